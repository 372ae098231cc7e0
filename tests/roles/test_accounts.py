"""roles.accounts: one account asked for, server.user planned only when it is missing or differs."""

from __future__ import annotations

import pwd
import subprocess

from pyinfra.api import deploy

from roles.accounts import Account, system_user


def account_here(user: str) -> dict:
    """The fact's command run by this machine's shell, its output through the fact's parser."""
    output = subprocess.run(["sh", "-c", Account().command(user)], capture_output=True, text=True,
                            check=True).stdout
    return Account().process(output.splitlines())


def test_the_fact_reads_one_real_account():
    root = pwd.getpwnam("root")
    assert account_here("root") == {"home": root.pw_dir, "shell": root.pw_shell, "group": "root"}


def test_a_missing_account_is_empty():
    assert account_here("no-such-account-here") == {}


@deploy("system user")
def service_user():
    system_user("mailagent", "/var/lib/mailagent")


def fake(name: str, getent: list[str] | None) -> tuple[str, dict]:
    responses = {"uname -s": "Linux", "command -v useradd": "/usr/sbin/useradd"}
    if getent is not None:
        responses["getent passwd mailagent"] = getent
    return (f"@fake/{name}", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": responses})


def test_user_is_added_when_missing_and_left_alone_when_as_wanted(run_deploy):
    plan = run_deploy(service_user, [
        fake("new", None),
        fake("same", ["/var/lib/mailagent:/usr/sbin/nologin", "group=mailagent"]),
        fake("other-shell", ["/var/lib/mailagent:/bin/bash", "group=mailagent"]),
    ])
    assert "useradd -d /var/lib/mailagent -s /usr/sbin/nologin -g mailagent -r -M mailagent" in plan.text("new")
    assert "useradd" not in plan.text("same") and "usermod" not in plan.text("same")
    assert "usermod -d /var/lib/mailagent -s /usr/sbin/nologin -g mailagent mailagent" in plan.text("other-shell")
    for name in ("new", "same", "other-shell"):
        assert "lastlog" not in plan.text(name)  # pyinfra's Users fact is never gathered
