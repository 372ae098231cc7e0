"""Operations the relay role needs beyond pyinfra's own."""

from __future__ import annotations

import hashlib
import posixpath

from pyinfra import host, state
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File, Sha256File

from roles.postfix_relay.facts import RelayCheckResult

# Content arrives on stdin into a file created 0600 from the start, then renamed into place:
# no moment where the secret is world-readable, and nothing of it in the command line or --diff.
_WRITE_PRIVATE = (
    'umask 077; d=$(dirname "$1"); t=$(mktemp "$d/.mailagent.XXXXXX") || exit 1; '
    'cat > "$t" && chown "$2" "$t" && chmod "$3" "$t" && mv -f "$t" "$1" || { rm -f "$t"; exit 1; }'
)


@operation()
def private_file(path: str, content: str, user: str = "root", group: str = "root", mode: str = "600"):
    """Ensure a secret file holds `content`, owned `user:group` with `mode`; never shows content."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    current = host.get_fact(File, path=path)
    same_content = current and host.get_fact(Sha256File, path=path) == digest
    same_meta = current and (current["user"], current["group"]) == (user, group) and \
        int(str(current["mode"]), 8) == int(mode, 8)
    if same_content and same_meta:
        host.noop(f"{path} is up to date")
        return
    yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(path)))
    yield StringCommand("sh", "-c", QuoteString(_WRITE_PRIVATE), "-", QuoteString(path),
                        QuoteString(f"{user}:{group}"), QuoteString(mode), _stdin=content)


@operation(is_idempotent=False)
def relay_accepts(script: str, arguments: list[str]):
    """Fail the host when the smarthost refuses the connection, TLS or the credentials.

    Runs only when the deploy executes (the script and maps exist by then); it never changes
    anything, so a healthy relay reports no change.
    """
    if not state.is_executing:
        host.noop("the smarthost is checked when the deploy runs")
        return
    result = host.get_fact(RelayCheckResult, script=script, arguments=arguments) or {
        "ok": False, "step": "run", "message": "the check printed nothing"}
    if not result.get("ok"):
        code = f"{result.get('code')} " if result.get("code") else ""
        report = f"relay check failed at {result.get('step')}: {code}{result.get('message')}"
        if result.get("hint"):
            report += f"\nhint: {result['hint']}"
        # A failing command, so pyinfra reports the host as failed with the reply and the hint.
        yield StringCommand("sh", "-c", QuoteString('printf "%s\\n" "$1" >&2; exit 1'), "-",
                            QuoteString(report))
        return
    host.noop(f"smarthost accepted TLS and AUTH in {result.get('elapsed_seconds')}s")
