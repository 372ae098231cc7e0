"""A drained host stays drained: the deploy keeps it refusing mail until the operator says not.

`mailagent drain` makes Postfix refuse new local mail with `postconf -e` (agent/drain_postfix.py)
and stops the agent. A routine deploy rewrites main.cf whole, which would quietly put the host
back into service in the middle of a scale-down. So the deploy reads the live
`smtpd_client_restrictions`: when it holds the drain's refusal, the rendered main.cf keeps the
drain's refusing values, the agent is left stopped, and the output says so. Host data
`undrain: true` (or `--data undrain=true`) renders the normal config: the host takes mail again.
"""

from __future__ import annotations

from mailagent.agent.drain_postfix import REFUSE_TEXT, refuse_edits
from roles.postfix_relay.facts import PostconfValues

DRAIN_PARAMETER = "smtpd_client_restrictions"


def flag(host, name: str) -> bool:
    """A yes/no host datum: a bool from an inventory, or text from `--data name=true`."""
    value = host.data.get(name, False)
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


def stays_drained(host) -> bool:
    """True when the host was drained and the operator did not ask to undrain it."""
    live = host.get_fact(PostconfValues, parameters=[DRAIN_PARAMETER]).get(DRAIN_PARAMETER, "")
    return REFUSE_TEXT in live and not flag(host, "undrain")


def keep_refusing(main_cf: str) -> str:
    """main.cf with the drain's refusing values appended (the last value of a key wins)."""
    lines = [f"{key} = {value}".rstrip() for key, value in refuse_edits().items()]
    return main_cf + "\n# Drained (mailagent drain): refusing new mail; deploy with undrain=true to undo.\n" \
        + "\n".join(lines) + "\n"
