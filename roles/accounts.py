"""A service's system user and group, checked by asking for that one account.

pyinfra's `server.user` reads every account on the host first (its Users fact runs six commands
per account: about 6 s of each deploy under the lab's emulation, a quarter of an idempotent
re-deploy); `system_user` asks `getent` for the one account and runs `useradd` when it is
missing, `usermod` when it differs from what the role wants, nothing when it is as wanted. No
password field is read.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server


class Account(FactBase):
    """One account's group, home and shell ({} when there is no such account)."""

    def command(self, user: str) -> str:
        return f"getent passwd {user} | cut -d: -f6,7 && echo \"group=$(id -gn {user})\" || true"

    def process(self, output) -> dict:
        lines = [line.strip() for line in output if line.strip()]
        if len(lines) != 2 or not lines[1].startswith("group="):
            return {}
        home, _, shell = lines[0].partition(":")
        return {"home": home, "shell": shell, "group": lines[1].removeprefix("group=")}


def system_user(user: str, home: str, shell: str = "/usr/sbin/nologin") -> None:
    """The system group `user` and the system user `user` in it, home `home` (not created)."""
    server.group(name=f"Add the {user} group", group=user, system=True)
    found = host.get_fact(Account, user=user)
    if not found:  # the flags server.user would give useradd
        server.shell(name=f"Add the {user} system user",
                     commands=[f"useradd -d {home} -s {shell} -g {user} -r -M {user}"])
    elif found != {"home": home, "shell": shell, "group": user}:
        server.shell(name=f"Set the {user} system user's home, shell and group",
                     commands=[f"usermod -d {home} -s {shell} -g {user} {user}"])
