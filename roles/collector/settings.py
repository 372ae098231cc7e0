"""Turn a host's data into the collector's settings, validated before anything is uploaded.

Host data:
    collector_server   dict of CollectorSettings fields, plus an optional `tls`:
                         {"ca_dir": DIR, "names": [...], "ips": [...]}  a certificate from the
                             project CA in DIR on the control machine (made there if missing)
                         {"cert": FILE, "key": FILE}  the user's own PEM files on the control
                             machine
                       `registration_token` and `admin_token` default to the `collector`
                       data's (what the agents' role registers with, and what re-registers
                       rebuilt hosts). `read_token` (dashboard, API, /metrics) is given here;
                       without it or the admin token, the read side answers 401 to everyone
                       unless `public_read` is true.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from pyinfra.api import DeployError

from mailagent.collector.settings import CollectorSettings
from mailagent.settings_loader import problem_lines

ETC = "/etc/mailagent-collector"
TLS_CERT, TLS_KEY = f"{ETC}/tls/cert.pem", f"{ETC}/tls/key.pem"
DEFAULT_LISTEN = "0.0.0.0:8480"


@dataclass(frozen=True)
class TlsSource:
    """Where the certificate comes from on the control machine."""

    ca_dir: str | None = None
    names: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    cert: str | None = None
    key: str | None = None


def _problem(host, field: str, message: str) -> DeployError:
    return DeployError(f"invalid collector settings, nothing was changed:\n"
                       f"{host.name}: collector_server.{field}: {message}")


def tls_source(host, data: dict) -> TlsSource | None:
    """The `tls` entry, checked: exactly one of ca_dir or cert+key."""
    tls = data.pop("tls", None)
    if tls is None:
        return None
    if not isinstance(tls, dict):
        raise _problem(host, "tls", "must be a dict with ca_dir, or cert and key")
    unknown = set(tls) - {"ca_dir", "names", "ips", "cert", "key"}
    if unknown:
        raise _problem(host, "tls", f"unknown keys {sorted(unknown)}")
    if bool(tls.get("ca_dir")) == bool(tls.get("cert") or tls.get("key")):
        raise _problem(host, "tls", "give either ca_dir (project CA) or cert and key (your own)")
    if not tls.get("ca_dir") and not (tls.get("cert") and tls.get("key")):
        raise _problem(host, "tls", "cert and key must be given together")
    return TlsSource(ca_dir=tls.get("ca_dir"), names=tuple(tls.get("names", ())),
                     ips=tuple(tls.get("ips", ())), cert=tls.get("cert"), key=tls.get("key"))


def settings_for(host) -> tuple[CollectorSettings, TlsSource | None]:
    """CollectorSettings for `host` (TLS paths pointing at the uploaded files) and the TLS source."""
    data = dict(host.data.get("collector_server") or {})
    tls = tls_source(host, data)
    data.setdefault("listen", DEFAULT_LISTEN)
    # The tokens the agents' role registers with default to the collector's own.
    for name in ("registration_token", "admin_token"):
        token = (host.data.get("collector") or {}).get(name)
        if token and name not in data:
            data[name] = token
    if tls is not None:
        data.update(tls_cert=TLS_CERT, tls_key=TLS_KEY)
    try:
        return CollectorSettings.model_validate(data), tls
    except ValidationError as exc:
        problems = [f"{host.name}: {line}" for line in problem_lines(exc, "collector_server")]
        raise DeployError("invalid collector settings, nothing was changed:\n"
                          + "\n".join(problems)) from None
