"""The presets of issue 14 (office365_connector, outlook, google_relay), the TLS client
certificate, and the Office 365 Basic-auth retirement hint: rendered, read back by the real
`postconf`, and their validation messages (one line per problem, naming the field)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from mailagent.relay.check import hint_for
from mailagent.relay.presets import get_provider
from mailagent.relay.parse import parse_profile
from mailagent.relay.profile import ProfileError
from mailagent.relay.render import SECRET_FILES, render
from mailagent.relay.target import Target
from tests.relay.certs import client_pair
from tests.relay.test_render_postconf import values, write_config

TENANT = "example-com.mail.protection.outlook.com"
CONNECTOR = {"provider": "office365_connector", "host": TENANT, "allow_port_25": True}
CERT, KEY = client_pair()


def problems(data: dict, environ=None) -> list[str]:
    with pytest.raises(ProfileError) as raised:
        parse_profile(data, environ=environ or {})
    return raised.value.problems


def test_connector_relays_to_the_tenant_on_25_with_starttls_and_no_auth(tmp_path):
    profile = parse_profile(CONNECTOR, environ={})
    files = render(profile, Target(hostname="web1"))
    assert "sasl_passwd" not in files
    assert "smtp_sasl" not in files["main.cf"]
    config = write_config(tmp_path, profile)
    assert values(config, "relayhost", "smtp_tls_security_level", "smtp_tls_wrappermode",
                  "smtp_sasl_auth_enable", "smtp_sasl_password_maps", "smtp_tls_cert_file") == {
        "relayhost": f"[{TENANT}]:25", "smtp_tls_security_level": "verify",
        "smtp_tls_wrappermode": "no", "smtp_sasl_auth_enable": "no",
        "smtp_sasl_password_maps": "", "smtp_tls_cert_file": ""}
    assert json.loads(files["relay.json"])["username"] is None


def test_connector_with_a_client_certificate_keeps_the_key_private(tmp_path):
    profile = parse_profile(dict(CONNECTOR, client_cert={"cert_pem": CERT, "key_pem": KEY}),
                            environ={})
    files = render(profile, Target(hostname="web1"))
    assert files["relay-client-cert.pem"] == CERT
    assert files["relay-client-key.pem"] == KEY and "relay-client-key.pem" in SECRET_FILES
    assert "PRIVATE KEY" not in files["main.cf"] + files["relay.json"] + files["relay-client-cert.pem"]
    config = write_config(tmp_path, profile)
    assert postfix_n(config).stderr == ""
    assert values(config, "smtp_tls_cert_file", "smtp_tls_key_file") == {
        "smtp_tls_cert_file": "/etc/postfix/relay-client-cert.pem",
        "smtp_tls_key_file": "/etc/postfix/relay-client-key.pem"}


def test_the_client_key_can_come_from_the_environment():
    data = dict(CONNECTOR, client_cert={"cert_pem": CERT, "key_env": "RELAY_CLIENT_KEY"})
    profile = parse_profile(data, environ={"RELAY_CLIENT_KEY": KEY})
    assert render(profile, Target())["relay-client-key.pem"] == KEY
    assert problems(data) == ["relay.client_cert.key_env: environment variable RELAY_CLIENT_KEY is not set"]


def test_render_writes_the_client_key_0600(tmp_path):
    path = tmp_path / "relay.json"
    path.write_text(json.dumps(dict(CONNECTOR, client_cert={"cert_pem": CERT, "key_pem": KEY})))
    result = subprocess.run([sys.executable, "-m", "mailagent", "render", "--profile", str(path),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "out" / "relay-client-key.pem").stat().st_mode) == 0o600
    assert not (tmp_path / "out" / "sasl_passwd").exists()


@pytest.mark.parametrize("data, expected", [
    ({"provider": "office365_connector", "allow_port_25": True},
     ["relay.host: required for provider office365_connector"]),
    (dict(CONNECTOR, host="smtp.office365.com"),
     ["relay.host: 'smtp.office365.com' does not end in .mail.protection.outlook.com; give the "
      "tenant's MX host (example.com -> example-com.mail.protection.outlook.com)"]),
    (dict(CONNECTOR, allow_port_25=False),
     ["relay.port: office365_connector accepts mail on 25 only, which most cloud networks block "
      "or throttle outbound; check this host can reach it, then set allow_port_25: true"]),
    (dict(CONNECTOR, port=587),
     ["relay.port: 587 is not a port office365_connector offers (STARTTLS: 25; implicit TLS: none)"]),
    (dict(CONNECTOR, username="app@example.com", password_env="M365_PASSWORD"),
     ["relay.password_env: environment variable M365_PASSWORD is not set",
      "relay.username: office365_connector takes no login (the smarthost accepts this host by its "
      "IP or client_cert); remove it",
      "relay.password_env: office365_connector takes no login (the smarthost accepts this host by "
      "its IP or client_cert); remove it"]),
    (dict(CONNECTOR, client_cert={"cert_pem": "hello", "key_pem": "x"}),
     ["relay.client_cert.cert_pem: is not PEM text (no BEGIN CERTIFICATE line)",
      "relay.client_cert.key_pem: is not an unencrypted PEM private key (no PRIVATE KEY line)"]),
    (dict(CONNECTOR, client_cert={"cert_pem": CERT}),
     ["relay.client_cert.key_pem: give either key_pem or key_env (one of them)"]),
    (dict(CONNECTOR, client_cert={"cert_pem": CERT, "key_pem": client_pair()[1]}),
     ["relay.client_cert: key_pem is not the private key of cert_pem"]),
    (dict(CONNECTOR, client_cert={"cert_pem": CERT, "key_pem": "-----BEGIN ENCRYPTED PRIVATE "
                                  "KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"}),
     ["relay.client_cert.key_pem: is encrypted; Postfix needs the key without a passphrase"]),
    (dict(CONNECTOR, client_cert={"cert_pem": CERT, "key_pem": "-----BEGIN PRIVATE KEY-----\n"
                                  "AAAA\n-----END PRIVATE KEY-----\n"}),
     ["relay.client_cert: key_pem is not a readable PEM private key"]),
    (dict(CONNECTOR, extra_main_cf={"smtp_tls_key_file": "/root/key.pem"}),
     ["relay.extra_main_cf.smtp_tls_key_file: is set by mailagent (the client certificate is a "
      "secret upload); use client_cert"]),
])
def test_connector_validation_names_each_field(data, expected):
    assert problems(data) == expected


def test_google_relay_takes_credentials_or_none():
    by_ip = parse_profile({"provider": "google_relay"}, environ={})
    assert (by_ip.host, by_ip.port, by_ip.tls, by_ip.username) == ("smtp-relay.gmail.com", 587,
                                                                   "starttls", None)
    assert "sasl_passwd" not in render(by_ip, Target())
    login = parse_profile({"provider": "google_relay", "port": 465, "username": "app@example.com",
                           "password": "app-pass"}, environ={})
    assert login.tls == "implicit"
    assert render(login, Target())["sasl_passwd"] == \
        "[smtp-relay.gmail.com]:465 app@example.com:app-pass\n"
    assert problems({"provider": "google_relay", "username": "app@example.com"}) == [
        "relay.password: required (or password_env)"]
    assert problems({"provider": "google_relay", "port": 2525}) == [
        "relay.port: 2525 is not a port google_relay offers (STARTTLS: 25, 587; implicit TLS: 465)"]


def test_outlook_is_the_consumer_endpoint_and_warns():
    profile = parse_profile({"provider": "outlook", "username": "me@outlook.com", "password": "pw"},
                            environ={})
    assert (profile.host, profile.port, profile.tls) == ("smtp-mail.outlook.com", 587, "starttls")
    assert "OAuth" in profile.preset.warning
    assert problems({"provider": "outlook", "port": 465, "username": "me@outlook.com",
                     "password": "pw"}) == [
        "relay.port: 465 is not a port outlook offers (STARTTLS: 587; implicit TLS: none)"]


def test_basic_auth_retirement_reply_gets_the_office365_hint():
    reply = "5.7.30 Basic authentication is not supported for Client Submission."
    hint = hint_for(550, reply, 587, get_provider("office365").hints)
    assert "office365_connector" in hint and "OAuth" in hint
    assert hint == get_provider("office365").hints["550 5.7.30"]  # the preset's own wins
    assert "office365_connector" in hint_for(550, reply, 587)  # a custom host gets it too
    assert "office365_connector" in get_provider("office365").warning


def test_connector_hints_cover_tenant_attribution():
    reply = "5.7.64 TenantAttribution; Relay Access Denied [SN1NAM02FT0123.eop-nam02.prod]"
    assert "inbound connector" in hint_for(550, reply, 25, get_provider("office365_connector").hints)


def postfix_n(config):
    return subprocess.run(["postconf", "-c", str(config), "-n"], capture_output=True, text=True)
