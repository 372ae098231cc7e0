"""A routine deploy keeps a drained host refusing mail (and its agent stopped) until `undrain`."""

from __future__ import annotations


from mailagent.agent.drain_postfix import REFUSE_TEXT
from tests.roles.conftest import relay_and_agent, fake_host

SES = {"provider": "ses", "region": "eu-west-1", "port": 2587, "username": "AKIAEXAMPLE",
       "password": "ses-secret-Pa55"}
DRAINED = f"smtpd_client_restrictions = check_client_access static:{{{REFUSE_TEXT}}}"


def _host(wheel_dir, drained: bool, **data):
    replies = {"postconf smtpd_client_restrictions": DRAINED if drained else
               "smtpd_client_restrictions =", "command -v useradd": "/usr/sbin/useradd"}
    name, host_data = fake_host("web1", "debian13", SES, **replies)
    return name, {**host_data, "mailagent_wheel_dir": str(wheel_dir), **data}


def _main_cf(uploads) -> list[str]:
    return uploads[("@fake/web1", "/etc/postfix/main.cf")].splitlines()


def test_a_drained_host_keeps_refusing_and_its_agent_stays_stopped(run_deploy, uploads, wheel_dir):
    plan = run_deploy(relay_and_agent, [_host(wheel_dir, drained=True)])
    main_cf = _main_cf(uploads)
    assert main_cf[-2:] == ["authorized_submit_users =", DRAINED]
    names = plan.names()
    assert "relay and agent | mailagent agent | Keep mailagent stopped (host drained)" in names
    assert "relay and agent | mailagent agent | Enable and start mailagent" not in names


def test_undrain_puts_the_host_back_into_service(run_deploy, uploads, wheel_dir):
    plan = run_deploy(relay_and_agent, [_host(wheel_dir, drained=True, undrain=True)])
    assert "authorized_submit_users =" not in _main_cf(uploads)
    assert "relay and agent | mailagent agent | Enable and start mailagent" in plan.names()


def test_a_host_in_service_is_not_touched_by_the_drain_logic(run_deploy, uploads, wheel_dir):
    run_deploy(relay_and_agent, [_host(wheel_dir, drained=False)])
    assert not [line for line in _main_cf(uploads) if REFUSE_TEXT in line or "authorized_submit" in line]
