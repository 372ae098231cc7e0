"""The hub role's plan on a @fake host: packages, server files, SASL rebuild; no secret anywhere."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import Config, Inventory, State, deploy
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from mailagent.control.hub import credentials
from roles.postfix_hub import postfix_hub
from tests.roles.conftest import DEBIAN_RELEASE, Plan, fake_host

CHECK_OK = '{"ok": true, "step": "quit", "elapsed_seconds": 0.1}'
UPSTREAM = {"provider": "sendgrid", "password": "SG.upstream-Secret-key"}


@deploy("hub only")
def _hub_only():
    if "hub" in host.groups:
        postfix_hub()


def test_hub_plan_serves_the_fleet_without_showing_a_secret(tmp_path):
    data = {"mailagent_pki_dir": str(tmp_path), "hub_server": {"names": ["hub.example.net"]}}
    hub = fake_host("hub", DEBIAN_RELEASE, UPSTREAM, check_relay=CHECK_OK)
    hub[1].update(data)
    fleet = fake_host("web1", DEBIAN_RELEASE, {"provider": "hub", "host": "hub.example.net"})
    fleet[1]["mailagent_pki_dir"] = str(tmp_path)
    inventory = Inventory(([hub, fleet], {}), hub=([hub[0]], {}), relays=([fleet[0]], {}))
    state = State(inventory=inventory, config=Config())
    connect_all(state)
    add_deploy(state, _hub_only)
    run_ops(state)
    text = Plan(state).text("hub")
    assert "postfix libsasl2-modules ca-certificates sasl2-bin" in text
    assert "saslpasswd2" in text and "/etc/postfix/hub_clients" in text
    assert "/etc/postfix/hub-tls/cert.pem" in text and "postfix check" in text
    assert credentials.password_for(tmp_path, "web1") not in text
    assert "SG.upstream-Secret-key" not in text
    for line in text.splitlines():
        assert "BEGIN" not in line or "PRIVATE KEY" not in line
    assert (tmp_path / "ca.pem").exists() and (tmp_path / "issued").is_dir()
