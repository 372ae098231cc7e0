"""Operations the agent role needs beyond pyinfra's own: each a no-op when already in place."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File, FileContents, Sha256File


@operation()
def signing_key(path: str, mailagent: str, user: str):
    """Ensure the host has its Ed25519 key (made on the host; the private half never leaves it)."""
    if host.get_fact(File, path=path):
        host.noop(f"{path} exists")
        return
    yield StringCommand(mailagent, "keygen", "--key", QuoteString(path))
    yield StringCommand("chown", f"{user}:{user}", QuoteString(path))
    yield StringCommand("chmod", "600", QuoteString(path))


def registration_marker(url: str, key_sha256: str | None) -> str:
    """What the marker holds once this key is registered with `url` (same formula as on the host)."""
    return hashlib.sha256(f"{url} {key_sha256}\n".encode()).hexdigest()


# On the host: the same digest, from the key file as it is after the deploy made it.
_WRITE_MARKER = 'printf "%s %s\\n" "$1" "$(sha256sum "$2" | cut -d" " -f1)" | sha256sum | cut -d" " -f1 > "$3"'


@operation(is_idempotent=False)
def registered(url: str, token: str, mailagent: str, settings_path: str, key_path: str, marker: str):
    """Register the host's public key with the collector; the token goes on stdin, never argv.

    Runs unless the marker says this very key is registered with `url` (a new key, or a new
    collector URL, registers again; the collector takes the same key twice as a no-op).
    """
    expected = registration_marker(url, host.get_fact(Sha256File, path=key_path))
    if host.get_fact(FileContents, path=marker) == [expected]:
        host.noop(f"already registered with {url}")
        return
    yield StringCommand(mailagent, "register", "--settings", QuoteString(settings_path),
                        "--url", QuoteString(url), _stdin=token + "\n")
    yield StringCommand("sh", "-c", QuoteString(_WRITE_MARKER), "-", QuoteString(url),
                        QuoteString(key_path), QuoteString(marker))
