"""Operations the agent role needs beyond pyinfra's own: each a no-op when already in place."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File, FileContents, Sha256File


@operation()
def venv_installed(venv: str, wheels: str, manifest: str):
    """Ensure `venv` holds exactly the wheel set whose MANIFEST is `manifest`, offline.

    The installed manifest is kept in the venv, so an interrupted install is retried next run.
    """
    stamp = f"{venv}/.mailagent-manifest"
    if host.get_fact(FileContents, path=stamp) == manifest.splitlines():
        host.noop(f"{venv} already has this wheel set")
        return
    pip = f"{venv}/bin/pip"
    yield StringCommand("python3", "-m", "venv", QuoteString(venv))
    yield StringCommand(pip, "install", "--no-index", "--find-links", QuoteString(wheels),
                        "-r", QuoteString(f"{wheels}/requirements.txt"))
    project = next(line.split()[1] for line in manifest.splitlines() if line.split()[1].startswith("mailagent-"))
    yield StringCommand(pip, "install", "--no-index", "--no-deps", "--force-reinstall",
                        QuoteString(f"{wheels}/{project}"))
    yield StringCommand("cp", QuoteString(f"{wheels}/MANIFEST"), QuoteString(stamp))


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
