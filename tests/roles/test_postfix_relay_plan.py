"""The relay role's plan on Debian and on a RHEL-family host (the commands it would run)."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError

from roles.postfix_relay import postfix_relay
from tests.roles.conftest import DEBIAN_RELEASE, ROCKY_RELEASE, fake_host

SES = {"provider": "ses", "region": "eu-west-1", "port": 2587, "username": "AKIAEXAMPLE",
       "password": "ses-secret-Pa55"}
CHECK_OK = '{"ok": true, "step": "quit", "elapsed_seconds": 0.1}'


def test_debian_plan_installs_configures_and_indexes(run_deploy):
    plan = run_deploy(postfix_relay, [fake_host("deb", DEBIAN_RELEASE, SES, check_relay=CHECK_OK)])
    text = plan.text("deb")
    assert "debconf-set-selections" in text
    assert "apt-get" in text and "install" in text and "postfix libsasl2-modules ca-certificates" in text
    assert "postmap /etc/postfix/sasl_passwd" in text
    assert "postfix check" in text
    assert "systemctl" in text


def test_rhel_plan_uses_dnf_and_the_sasl_plain_plugin(run_deploy):
    plan = run_deploy(postfix_relay, [fake_host("rocky", ROCKY_RELEASE, SES, check_relay=CHECK_OK)])
    text = plan.text("rocky")
    assert "dnf install -y postfix cyrus-sasl-plain ca-certificates" in text
    assert "apt-get" not in text
    assert "/etc/pki/tls/certs/ca-bundle.crt" in text


def test_password_never_in_any_command(run_deploy):
    plan = run_deploy(postfix_relay, [fake_host("deb", DEBIAN_RELEASE, SES, check_relay=CHECK_OK)])
    assert plan.commands("deb")
    assert "ses-secret-Pa55" not in plan.text("deb")


def test_invalid_data_fails_before_any_command(run_deploy):
    bad = dict(SES, port=2525)
    hosts = [fake_host("good", DEBIAN_RELEASE, SES), fake_host("bad", DEBIAN_RELEASE, bad)]
    with pytest.raises(DeployError) as raised:
        run_deploy(postfix_relay, hosts)
    assert "@fake/bad: relay.port: 2525 is not a port ses offers" in str(raised.value)


def test_refused_credentials_fail_the_host_with_the_hint(run_deploy):
    refused = ('{"ok": false, "step": "auth", "code": 535, "message": "5.7.8 invalid", '
               '"hint": "wrong credentials: the smarthost refused the user name or password"}')
    plan = run_deploy(postfix_relay, [fake_host("deb", DEBIAN_RELEASE, SES, check_relay=refused)])
    last = plan.commands("deb")[-1]
    assert "relay check failed at auth: 535 5.7.8 invalid" in last
    assert "hint: wrong credentials" in last and "exit 1" in last
