"""A collector started in the background for a folder (the lab's, or a developer's).

`spawn(state_dir)` writes the settings into the folder, starts `mailagent collector serve` in
its own session (it outlives the caller), waits until `/healthz` answers, and returns how to
reach it; `stop(state_dir)` ends it. With `tls=True` the folder gets its own CA and a server
certificate for `names` and `ips` (by default what lab guests use: the name
collector.lab.mailagent.test and QEMU's host alias 10.0.2.2, plus 127.0.0.1). What is kept::

    <state_dir>/collector.toml   settings (0600: holds the tokens; the read side is public)
    <state_dir>/collector.db     the SQLite database
    <state_dir>/collector.log    the service's output
    <state_dir>/runtime.json     pid, url, token, CA: what `spawn` returned
    <state_dir>/ca/, tls/        the CA and the server certificate (when tls=True)
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mailagent import pki
from mailagent.fileio import write_atomic
from mailagent.collector.settings import CollectorSettings, to_toml

LAB_NAMES = ["collector.lab.mailagent.test", "localhost"]
LAB_IPS = ["10.0.2.2", "127.0.0.1"]
START_TIMEOUT = 60.0


class CollectorError(RuntimeError):
    """The collector did not start (the message carries the end of its log)."""


def _free_port(bind: str) -> int:
    with socket.socket() as sock:
        sock.bind((bind, 0))
        return sock.getsockname()[1]


def _token(state_dir: Path, name: str = "token") -> str:
    path = state_dir / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    write_atomic(path, text.encode(), 0o600)


def spawn(state_dir: Path, *, bind: str = "127.0.0.1", port: int = 0, tls: bool = True,
          names: list[str] | None = None, ips: list[str] | None = None, **settings) -> dict:
    """Start a collector for `state_dir` (stopping one left there before); return its info."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    stop(state_dir)
    # public_read: the lab's collector listens on loopback only (guests reach it through QEMU's
    # forwarding), and the lab tests and `lab demo` read the fleet without credentials. The
    # admin token is for operator calls by hand (delete, drained); the lab itself needs none.
    values = {"listen": f"{bind}:{port or _free_port(bind)}", "registration_token": _token(state_dir),
              "admin_token": _token(state_dir, "admin-token"), "public_read": True,
              "database_url": f"sqlite:///{state_dir / 'collector.db'}", **settings}
    ca_cert = None
    if tls:
        ca_cert, _ = pki.create_ca(state_dir / "ca", "mailagent collector CA")
        cert, key = pki.issue_server_cert(state_dir / "ca", names or LAB_NAMES, ips or LAB_IPS,
                                          state_dir / "tls")
        values.update(tls_cert=str(cert), tls_key=str(key))
    config = CollectorSettings.model_validate(values)
    _write_private(state_dir / "collector.toml", to_toml(config))
    host, port = config.listen_address()
    info = {"url": f"{'https' if tls else 'http'}://{host}:{port}", "port": port,
            "registration_token": values["registration_token"],
            "admin_token": values["admin_token"],
            "ca_cert": str(ca_cert) if ca_cert else None, "database_url": config.database_url,
            "log": str(state_dir / "collector.log")}
    info["pid"] = _launch(state_dir, info)
    (state_dir / "runtime.json").write_text(json.dumps(info, indent=2))
    return info


def _launch(state_dir: Path, info: dict) -> int:
    with open(state_dir / "collector.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailagent", "collector", "serve", "--config",
             str(state_dir / "collector.toml")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    verify = ssl.create_default_context(cafile=info["ca_cert"]) if info["ca_cert"] else False
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(info["url"] + "/healthz", verify=verify, timeout=2).status_code == 200:
                return proc.pid
        except httpx.HTTPError:
            time.sleep(0.2)
    _end(proc.pid)
    tail = (state_dir / "collector.log").read_text(errors="replace")[-2000:]
    raise CollectorError(f"the collector did not start:\n{tail}")


def stop(state_dir: Path) -> bool:
    """Stop the collector started for `state_dir`; False if none was running."""
    runtime = Path(state_dir) / "runtime.json"
    if not runtime.exists():
        return False
    pid = json.loads(runtime.read_text())["pid"]
    runtime.unlink()
    return _end(pid)


def _end(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; reaps it when it is our child."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    _alive(pid)
    return True


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
