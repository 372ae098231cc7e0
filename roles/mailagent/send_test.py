"""A test mail from each host, followed to its smarthost's reply: one line per host.

    [relay1] delivered: 250 2.0.0 OK queued as 9F2C41D07A3B (Verified TLS TLSv1.3, AUTH lab)
    [relay2] deferred: 535 5.7.8 Authentication credentials invalid; hint: wrong credentials: ...

Runs `mailagent send-test --json` on the host (roles/mailagent installs it) and prints its
summary; a host whose mail was not delivered fails, so the deploy exits non-zero. Host data (or
`--data`): `to` (required), `from`, `timeout` (seconds, default 60).
"""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.api import DeployError, QuoteString, StringCommand, operation

from mailagent.agent.send_test import ADDRESS, summary
from roles.mailagent import ON_PATH
from roles.mailagent.operations import ShownCommand

DEFAULT_TIMEOUT = 60


def send_test_mail() -> None:
    """The operation for this host, from its data; bad data stops the deploy before any mail."""
    to, sender = host.data.get("to"), host.data.get("from")
    timeout = host.data.get("timeout", DEFAULT_TIMEOUT)
    if to is None:
        raise DeployError("--data to=ADDR is required: the recipient of the test mail")
    for key, value in (("to", to), ("from", sender)):
        if value is not None and not ADDRESS.match(str(value)):
            raise DeployError(f"{host.name}: --data {key}=ADDR: {value!r} is not an address like "
                              "ops@example.com")
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise DeployError(f"{host.name}: --data timeout=S: {timeout!r} is not a number of seconds")
    mail_followed(name=f"Send a test mail to {to} and follow it", to=to, sender=sender,
                  timeout=timeout)


@operation(is_idempotent=False)
def mail_followed(to: str, sender: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                  mailagent: str = ON_PATH):
    """Submit one test mail on the host and wait for what its smarthost said."""
    args = ["send-test", "--json", "--to", QuoteString(to), "--timeout", str(timeout)]
    if sender:
        args += ["--from", QuoteString(sender)]
    yield ResultCommand(StringCommand(mailagent, *args))


class ResultCommand(ShownCommand):
    """Runs `mailagent send-test --json` and shows its one-line summary on the control machine
    (the result is failure unless delivered); output that is not a result is shown as it is."""

    def shown(self, ok: bool, output) -> list[str]:
        try:
            return [summary(json.loads(output.stdout))]
        except (ValueError, KeyError, TypeError):
            return [line.strip() for line in output.stderr_lines + output.stdout_lines] or [
                "mailagent send-test printed nothing"]
