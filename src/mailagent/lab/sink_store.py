"""What the lab sink keeps on disk, and the only code that reads or writes it.

Everything lives in `<lab_dir>/sink/`::

    ca/ca.pem, ca/ca.key          the lab CA (kept across restarts; guests trust ca.pem)
    tls/cert.pem, tls/key.pem     the sink's server certificate
    credentials.json   (0600)     {"username", "password"} the relays log in with
    logins.json        (0600)     {username: password} further logins a test adds (say, one per
                                  sender route), read on every AUTH so no restart is needed
    config.json                   {"bind", "hostname", "starttls_ports", "implicit_ports"}
    mode                          normal | tempfail | reject-auth | no-starttls, read on every
                                  command (no-starttls: STARTTLS ports offer no STARTTLS)
    sink.pid, runtime.json        written by the running daemon once all ports listen
    sink.log                      the daemon's own log
    mail.jsonl, auth.jsonl, connections.jsonl   one JSON object per line, append-only

The daemon is one single-threaded asyncio process, so appends never interleave.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path

from mailagent import pki

MODES = ("normal", "tempfail", "reject-auth", "no-starttls")
DEFAULT_USER = "lab-relay"
MAIL_LOG, AUTH_LOG, CONN_LOG = "mail.jsonl", "auth.jsonl", "connections.jsonl"
LOGINS = "logins.json"


def sink_dir(lab_dir: Path) -> Path:
    """The sink's folder inside a lab dir."""
    return Path(lab_dir) / "sink"


def ensure_credentials(sdir: Path, username: str = DEFAULT_USER) -> dict:
    """The lab's relay credentials: read them, or make a random password once (0600 file)."""
    path = sdir / "credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    creds = {"username": username, "password": secrets.token_urlsafe(18)}
    sdir.mkdir(parents=True, exist_ok=True)
    pki.write_private(path, json.dumps(creds).encode())
    return creds


def read_credentials(sdir: Path) -> dict:
    """The credentials the daemon checks logins against (never passed on a command line)."""
    return json.loads((sdir / "credentials.json").read_text())


def read_logins(sdir: Path) -> dict[str, str]:
    """Every login the sink accepts, {username: password}: the lab's own and the added ones."""
    creds = read_credentials(sdir)
    return {**(read_json(sdir / LOGINS) or {}), creds["username"]: creds["password"]}


def write_logins(sdir: Path, logins: dict[str, str]) -> None:
    """Replace the added logins (`{}` removes them); the lab's own login always stays."""
    sdir.mkdir(parents=True, exist_ok=True)
    if not logins:
        (sdir / LOGINS).unlink(missing_ok=True)
        return
    pki.write_private(sdir / LOGINS, json.dumps(logins).encode())


def ensure_tls(sdir: Path, hostname: str, ips: list[str]) -> dict:
    """The lab CA (reused) and a server certificate for `hostname` and `ips` (reissued when the
    names differ or it has less than a week left). Returns the three paths."""
    ca_cert, _ = pki.create_ca(sdir / "ca", "mailagent lab CA")
    tls = sdir / "tls"
    cert, key = tls / pki.SERVER_CERT, tls / pki.SERVER_KEY
    if not (cert.exists() and key.exists() and _cert_fits(cert, [hostname], ips)):
        cert, key = pki.issue_server_cert(sdir / "ca", [hostname], ips, tls)
    return {"ca_cert": str(ca_cert), "cert": str(cert), "key": str(key)}


def _cert_fits(cert: Path, names: list[str], ips: list[str]) -> bool:
    have_names, have_ips = pki.cert_names(cert)
    fresh = pki.expires_at(cert) - dt.datetime.now(dt.timezone.utc) > dt.timedelta(days=7)
    return fresh and have_names == names and sorted(have_ips) == sorted(ips)


def read_json(path: Path) -> dict | None:
    """A small JSON file, or None when it is absent."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_json(path: Path, data: dict) -> None:
    """Replace a small JSON file atomically."""
    pki.write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), 0o644)


def read_mode(sdir: Path) -> str:
    """The current mode; a missing or unreadable mode file means normal."""
    try:
        mode = (sdir / "mode").read_text().strip()
    except OSError:
        return "normal"
    return mode if mode in MODES else "normal"


def write_mode(sdir: Path, mode: str) -> None:
    """Switch the running sink's behaviour; it reads the file on each command."""
    if mode not in MODES:
        raise ValueError(f"sink mode must be one of {', '.join(MODES)}, not {mode!r}")
    sdir.mkdir(parents=True, exist_ok=True)
    pki.write_atomic(sdir / "mode", (mode + "\n").encode(), 0o644)


def append(path: Path, record: dict) -> None:
    """Append one JSON line and make it durable before the client hears back."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[dict]:
    """Every complete record of a JSONL file ([] when absent); a torn last line is skipped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
