"""deploy/remove.py's role on @fake hosts: what it takes off, and that queued mail stops it."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError

from roles.removal import remove
from tests.roles.conftest import fake_host


def _host(kind: str = "debian13", queued: int = 0, **data):
    name, host_data = fake_host("web1", kind, {}, **{"/var/spool/postfix/maildrop": str(queued)})
    return name, {**host_data, **data}


def _names(plan) -> list[str]:
    return [name.split(" | ", 1)[1] for name in plan.names()]


def test_removes_the_agent_and_keeps_postfix_by_default(run_deploy):
    names = _names(run_deploy(remove, [_host()]))
    assert names[0] == "Stop and disable mailagent"
    for path in ("/opt/mailagent", "/etc/mailagent", "/var/lib/mailagent", "/usr/local/bin/mailagent",
                 "/etc/systemd/system/mailagent.service", "/usr/local/lib/mailagent"):
        assert f"Remove {path}" in names
    assert names[-2:] == ["Remove the mailagent system user", "Remove the mailagent group"]
    assert not [name for name in names if "postfix" in name]


@pytest.mark.parametrize("kind,purge", [("debian13", "Purge postfix"), ("rocky9", "Remove postfix")])
def test_remove_postfix_purges_it_and_its_secrets(run_deploy, kind, purge):
    names = _names(run_deploy(remove, [_host(kind, remove_postfix=True)]))
    assert purge in names and "Stop postfix" in names
    assert "Remove /etc/postfix/sasl_passwd" in names and "Remove /etc/postfix/hub-tls" in names


def test_queued_mail_stops_the_deploy_before_any_change(run_deploy):
    with pytest.raises(DeployError) as raised:
        run_deploy(remove, [_host(queued=3)])
    assert str(raised.value) == ("@fake/web1: 3 message(s) still queued, nothing was changed; drain the "
                                 "host first (mailagent drain) or pass --data remove_force=true")


def test_force_removes_with_mail_queued(run_deploy):
    assert "Remove /opt/mailagent" in _names(run_deploy(remove, [_host(queued=3, remove_force=True)]))
