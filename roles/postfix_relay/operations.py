"""Operations the relay role needs beyond pyinfra's own."""

from __future__ import annotations

from pyinfra import host, state
from pyinfra.api import QuoteString, StringCommand, operation

from roles.postfix_relay.facts import RelayCheckResult

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
    done = "TLS and AUTH" if any(s.get("step") == "auth" for s in result.get("steps", [])) else "TLS"
    host.noop(f"smarthost accepted {done} in {result.get('elapsed_seconds')}s")
