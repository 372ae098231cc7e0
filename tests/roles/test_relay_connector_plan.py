"""The relay role with the presets of issue 14 against @fake hosts: the Office 365 Basic-auth
warning (named host, deploy goes on) and the connector's client certificate (key only through
private_file, 0600, never in a command or an upload)."""

from __future__ import annotations

import logging

from roles.postfix_relay import postfix_relay, preset_warnings
from roles.postfix_relay.validate import parse_profile
from tests.relay.certs import client_pair
from tests.roles.conftest import fake_host

CHECK_OK = '{"ok": true, "step": "quit", "elapsed_seconds": 0.1}'
OFFICE365 = {"provider": "office365", "username": "app@example.com", "password": "m365-Pa55"}
CERT, KEY = client_pair("web1.example.com")
CONNECTOR = {"provider": "office365_connector", "host": "example-com.mail.protection.outlook.com",
             "allow_port_25": True, "client_cert": {"cert_pem": CERT, "key_pem": KEY}}
KEY_PATH = "/etc/postfix/relay-client-key.pem"


def test_office365_hosts_get_a_warning_naming_them_and_the_deploy_goes_on(run_deploy, caplog):
    hosts = [fake_host("m365", "debian13", OFFICE365, check_relay=CHECK_OK),
             fake_host("sg", "debian13", {"provider": "sendgrid", "password": "k"},
                       check_relay=CHECK_OK)]
    with caplog.at_level(logging.WARNING, logger="pyinfra"):
        plan = run_deploy(postfix_relay, hosts)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "relay.provider" in w] == [
        "@fake/m365: relay.provider office365: Microsoft turns off password (Basic) authentication "
        "for SMTP AUTH on existing Microsoft 365 tenants at the end of December 2026, after which "
        "this relay's mail is refused with 550 5.7.30; move to provider office365_connector (an "
        "inbound connector for this host's public IP or TLS client certificate), or to an "
        "OAuth-capable path or another provider"]
    assert "systemctl" in plan.text("m365")  # a warning, not a failure


def test_the_warning_comes_from_the_preset_data_for_every_smarthost():
    [warning] = preset_warnings(parse_profile(OFFICE365), "web1")
    assert warning.startswith("web1: relay.provider office365: Microsoft turns off")
    [warning] = preset_warnings(parse_profile(
        {"provider": "outlook", "username": "me@outlook.com", "password": "pw"}), "web2")
    assert "OAuth" in warning
    assert preset_warnings(parse_profile(CONNECTOR), "web3") == []
    routed = dict(CONNECTOR, sender_routes=[{"senders": ["billing.example.com"], **OFFICE365}])
    [warning] = preset_warnings(parse_profile(routed), "web4")
    assert warning.startswith("web4: relay.sender_routes[0].provider office365: Microsoft")


def test_connector_uploads_the_certificate_and_the_key_only_privately(run_deploy, uploads):
    plan = run_deploy(postfix_relay, [fake_host("web1", "debian13", CONNECTOR, check_relay=CHECK_OK)])
    text = plan.text("web1")
    assert uploads[("@fake/web1", "/etc/postfix/relay-client-cert.pem")] == CERT
    assert not [path for (_host, path) in uploads if path == KEY_PATH]
    assert f"mv -f \"$t\" \"$1\" || {{ rm -f \"$t\"; exit 1; }}' - {KEY_PATH} root:root 600" in text
    assert "PRIVATE KEY" not in text and KEY.splitlines()[1] not in text
    main_cf = uploads[("@fake/web1", "/etc/postfix/main.cf")]
    assert f"smtp_tls_key_file = {KEY_PATH}\n" in main_cf and "smtp_sasl_auth_enable" not in main_cf
    assert "postmap /etc/postfix/sasl_passwd" not in text  # no AUTH, no SASL map


def test_a_relay_without_certificate_removes_an_old_key(run_deploy):
    # What the File fact's stat prints for the key a connector deploy left behind.
    stat = f"stat -c 'user=%U group=%G mode=%A atime=%X mtime=%Y ctime=%Z size=%s %N' {KEY_PATH}"
    found = f"user=root group=root mode=-rw------- atime=0 mtime=0 ctime=0 size=241 '{KEY_PATH}'"
    host = fake_host("web1", "debian13", OFFICE365, check_relay=CHECK_OK, **{stat: found})
    assert f"rm -f {KEY_PATH}" in run_deploy(postfix_relay, [host]).text("web1")
