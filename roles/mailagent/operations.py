"""Operations the agent role needs beyond pyinfra's own: each a no-op when already in place."""

from __future__ import annotations

import hashlib

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.command import PyinfraCommand
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
def registered(url: str, token: str, mailagent: str, settings_path: str, key_path: str, marker: str,
               admin_token: str | None = None):
    """Register the host's public key with the collector; tokens go on stdin, never argv.

    Runs unless the marker says this very key is registered with `url` (a new key, or a new
    collector URL, registers again; the collector takes the same key twice as a no-op). With
    the admin token, a host rebuilt under the same name (a new key) replaces its old key, and
    the deploy's output says so.
    """
    expected = registration_marker(url, host.get_fact(Sha256File, path=key_path))
    if host.get_fact(FileContents, path=marker) == [expected]:
        host.noop(f"already registered with {url}")
        return
    stdin = token + "\n" + (admin_token + "\n" if admin_token else "")
    yield SayingCommand(StringCommand(mailagent, "register", "--settings", QuoteString(settings_path),
                                      "--url", QuoteString(url), _stdin=stdin),
                        say="registered key replaced")
    yield StringCommand("sh", "-c", QuoteString(_WRITE_MARKER), "-", QuoteString(url),
                        QuoteString(key_path), QuoteString(marker))


class ShownCommand(PyinfraCommand):
    """A command some of whose output the deploy shows (pyinfra prints a successful command's
    output only with -vvv): `shown` picks the lines, logged as info when it succeeded and as
    errors when it failed."""

    def __init__(self, command: StringCommand):
        super().__init__()
        self.command = command

    def __str__(self) -> str:
        return str(self.command)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.command!r})"

    def shown(self, ok: bool, output) -> list[str]:
        raise NotImplementedError

    def execute(self, state, host, connector_arguments) -> bool:
        ok, output = self.command.execute(state, host, connector_arguments)
        for line in self.shown(ok, output):
            (logger.info if ok else logger.error)(f"{host.print_prefix}{line}")
        return ok


class SayingCommand(ShownCommand):
    """Shows its stdout lines containing `say`; on failure its stderr."""

    def __init__(self, command: StringCommand, say: str):
        super().__init__(command)
        self.say = say

    def shown(self, ok: bool, output) -> list[str]:
        lines = output.stdout_lines if ok else output.stderr_lines
        return [line.strip() for line in lines if not ok or self.say in line]
