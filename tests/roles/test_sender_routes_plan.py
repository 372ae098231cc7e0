"""The relay role with sender_routes: the two maps indexed, the transports in master.cf, the
route passwords only through the 0600 SASL map, a bad route stopping the deploy first."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError

from roles.postfix_relay import postfix_relay
from tests.roles.conftest import fake_host

CHECK_OK = '{"ok": true, "step": "quit", "elapsed_seconds": 0.1}'
CA = "-----BEGIN CERTIFICATE-----\nMIIBroute\n-----END CERTIFICATE-----\n"
ROUTED = {"provider": "custom", "host": "smtp.main.example", "port": 2525, "username": "main",
          "password": "main-Secret-1", "sender_routes": [
              {"senders": ["a.example"], "host": "smtp.a.example", "port": 2587, "username": "ua",
               "password": "route-a-Secret-2"},
              {"senders": ["alerts@b.example"], "host": "smtp.b.example", "port": 2465,
               "username": "ub", "password": "route-b-Secret-3", "tls_verify": "secure", "ca_pem": CA}]}
SECRETS = ("main-Secret-1", "route-a-Secret-2", "route-b-Secret-3")


def test_routes_are_indexed_and_their_transports_written(run_deploy, uploads):
    plan = run_deploy(postfix_relay, [fake_host("web1", "debian13", ROUTED, check_relay=CHECK_OK)])
    text = plan.text("web1")
    for name in ("sasl_passwd", "sender_relay", "sender_transport"):
        assert f"postmap /etc/postfix/{name}" in text
    assert "# BEGIN mailagent sender_routes transports" in text
    assert "route1  unix" in text and "-o smtp_tls_wrappermode=yes" in text
    assert uploads[("@fake/web1", "/etc/postfix/sender_relay")] == (
        "@a.example [smtp.a.example]:2587\nalerts@b.example [smtp.b.example]:2465\n")
    assert uploads[("@fake/web1", "/etc/postfix/route1-ca.pem")] == CA
    assert "smtp_sender_dependent_authentication = yes" in uploads[("@fake/web1", "/etc/postfix/main.cf")]
    assert "--sasl-key @a.example" in text and "--sasl-key alerts@b.example" in text
    assert "--ca-file /etc/postfix/route1-ca.pem" in text
    checks = [name for name in plan.names() if "smarthost" in name]
    assert checks == ["Postfix relay | Check the smarthost smtp.main.example:2525 (EHLO, TLS, AUTH)",
                      "Postfix relay | Check sender route 0's smarthost smtp.a.example:2587 (EHLO, TLS, AUTH)",
                      "Postfix relay | Check sender route 1's smarthost smtp.b.example:2465 (EHLO, TLS, AUTH)"]


def test_route_passwords_never_in_a_command_or_a_public_upload(run_deploy, uploads):
    plan = run_deploy(postfix_relay, [fake_host("web1", "debian13", ROUTED, check_relay=CHECK_OK)])
    assert not [s for s in SECRETS if s in plan.text("web1")]
    assert not [(path, s) for (_, path), text in uploads.items() for s in SECRETS if s in text]


def test_without_routes_the_maps_and_transports_are_removed(run_deploy):
    plain = {k: v for k, v in ROUTED.items() if k != "sender_routes"}
    plan = run_deploy(postfix_relay, [fake_host("web1", "debian13", plain, check_relay=CHECK_OK)])
    assert "postmap /etc/postfix/sender_relay" not in plan.text("web1")
    names = plan.names()
    assert {"Postfix relay | Remove the unused sender_relay map",
            "Postfix relay | Remove the unused sender_transport map"} <= set(names)
    assert not [name for name in names if "sender routes' transports" in name]  # none there to remove


def test_a_bad_route_stops_every_host_before_any_command(run_deploy):
    bad = dict(ROUTED, sender_routes=[dict(ROUTED["sender_routes"][0], port=2465, tls="starttls"),
                                      dict(ROUTED["sender_routes"][1], senders=["a.example"])])
    hosts = [fake_host("good", "debian13", ROUTED), fake_host("bad", "debian13", bad)]
    with pytest.raises(DeployError) as raised:
        run_deploy(postfix_relay, hosts)
    message = str(raised.value)
    assert "@fake/bad: relay.sender_routes[0].tls: starttls contradicts port 2465" in message
    assert "@fake/bad: relay.sender_routes[1].senders[0]: @a.example is already routed by sender_routes[0]" in message
