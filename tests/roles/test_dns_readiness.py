"""The deploy's DNS pre-flight (roles/dns_readiness.py) on @fake hosts, asking a real nsd on
loopback: `warn` logs and deploys, `fail` stops before any host is touched, `off` asks nothing."""

from __future__ import annotations

import logging

import pytest
from pyinfra.api import DeployError, deploy

from mailagent.control.dnscheck.resolve import DnsGuardError
from roles.dns_readiness import dns_preflight
from tests.control.dnscheck.nsd import NsdServer
from tests.control.dnscheck.zones import ZONES
from tests.roles.conftest import fake_host


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    with NsdServer(tmp_path_factory.mktemp("nsd"), ZONES) as server:
        yield server


@deploy("site with pre-flight")
def site():
    from roles.postfix_relay import postfix_relay

    dns_preflight()
    postfix_relay(check=False)


def relay(domain: str, **dns) -> tuple[str, dict]:
    name, data = fake_host("web1", "debian12", {"provider": "sendgrid", "password": "key",
                                                "sender_address": f"app@{domain}.example.test"})
    return name, {**data, **dns}


def test_warn_logs_each_problem_and_deploys(run_deploy, nsd, caplog):
    caplog.set_level(logging.WARNING)
    plan = run_deploy(site, [relay("nospf", dns_nameserver=nsd.nameserver)])
    assert any("main.cf" in command for command in plan.commands("web1"))
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("DNS readiness:")]
    assert "DNS readiness: fail  nospf.example.test  spf          no SPF record; publish: " \
           'nospf.example.test. TXT "v=spf1 include:sendgrid.net ~all"' in warned


def test_fail_stops_the_deploy_before_any_host_is_touched(run_deploy, nsd):
    with pytest.raises(DeployError) as error:
        run_deploy(site, [relay("nospf", dns_check="fail", dns_nameserver=nsd.nameserver)])
    message = str(error.value)
    assert message.startswith("DNS readiness (dns_check: fail), nothing was changed:")
    assert "fail  nospf.example.test  spf          no SPF record" in message


def test_fail_lets_a_ready_domain_through(run_deploy, nsd):
    plan = run_deploy(site, [relay("good", dns_check="fail", dns_nameserver=nsd.nameserver)])
    assert any("main.cf" in command for command in plan.commands("web1"))


def test_off_sends_no_query(run_deploy):
    # No nameserver: any query would meet the tests' guard and raise.
    plan = run_deploy(site, [relay("nospf", dns_check="off")])
    assert any("main.cf" in command for command in plan.commands("web1"))


def test_the_guard_refuses_the_system_resolver(run_deploy):
    with pytest.raises(DnsGuardError, match="explicit loopback nameserver"):
        run_deploy(site, [relay("nospf")])


def test_a_bad_setting_names_the_host_and_key(run_deploy):
    with pytest.raises(DeployError) as error:
        run_deploy(site, [relay("nospf", dns_check="maybe", dns_nameserver="dns.example")])
    assert str(error.value).splitlines()[1:] == [
        "@fake/web1: dns_check: Input should be 'warn', 'fail' or 'off'",
        "@fake/web1: dns_nameserver: Value error, 'dns.example' is not a nameserver address like "
        "192.0.2.53 or 127.0.0.1:5353"]
