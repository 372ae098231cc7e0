"""Per-host SASL credentials for the hub, derived on the control machine, stored nowhere else.

One random secret (`hub-sasl.key`, 0600, next to the project CA) is made on first use; each fleet
host's password is an HMAC of its login under that secret. The hub deploy and each fleet host's
deploy derive the same password independently, so no credential file has to be shared, copied or
kept in the inventory, and rotating the secret file rotates every password at the next deploys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

from mailagent.fileio import write_atomic

SECRET_FILE = "hub-sasl.key"
DEFAULT_PKI_DIR = "~/.local/share/mailagent/pki"
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CredentialError(ValueError):
    pass


def pki_dir(data_value: str | None) -> Path:
    """The control machine's project folder (host data `mailagent_pki_dir`, or the default)."""
    return Path(os.path.expanduser(data_value or DEFAULT_PKI_DIR))


def login_for(host_name: str) -> str:
    """A fleet host's SASL login at the hub: its inventory name (without a `@connector/` prefix,
    so `@vagrant/relay1` logs in as `relay1`)."""
    login = host_name.rsplit("/", 1)[-1] if host_name.startswith("@") else host_name
    if not _LOGIN.match(login):
        raise CredentialError(f"{host_name!r} cannot be a hub login (letters, digits, . _ - only)")
    return login


def password_for(folder: Path, login: str) -> str:
    """The login's password: 32 URL-safe characters, the same on every call for this secret."""
    digest = hmac.new(_secret(folder), b"mailagent-hub-sasl\0" + login.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode()[:32]


def _secret(folder: Path) -> bytes:
    path = Path(folder) / SECRET_FILE
    if not path.exists():
        # Exclusive create: two deploys starting at once must not end up with two secrets.
        try:
            write_new(path, os.urandom(32))
        except FileExistsError:
            pass
    secret = path.read_bytes()
    if len(secret) < 32:
        raise CredentialError(f"{path} is shorter than 32 bytes; remove it to make a new one")
    return secret


def write_new(path: Path, data: bytes) -> None:
    """Create `path` 0600 with `data`, failing if it exists (atomic: temp file + link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    write_atomic(tmp, data, mode=0o600)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
