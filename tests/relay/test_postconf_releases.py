"""Every preset on each port, rendered for Postfix 3.5, 3.7 and 3.10, read back by that release's
own `postconf` (Debian bullseye, bookworm and trixie; tests/relay/postfix_releases.py fetches
them into a cache on first use)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailagent.control.hub.render import render_hub
from mailagent.control.hub.settings import HubClient, HubSettings
from mailagent.relay.presets import providers
from mailagent.relay.parse import parse_profile
from mailagent.relay.render import render
from mailagent.relay.target import Target
from tests.relay.certs import client_pair
from tests.relay.postfix_releases import SUITES, Release, release
from tests.relay.test_render_postconf import preset_ports, profile_for

pytestmark = pytest.mark.timeout(600)

PROTOCOLS = {(3, 5): "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", (3, 7): ">=TLSv1.2", (3, 10): ">=TLSv1.2"}
LEVELS = {(3, 5): "2", (3, 7): "3.6", (3, 10): "3.6"}


@pytest.fixture(scope="module", params=list(SUITES))
def postfix(request) -> Release:
    return release(request.param)


def version_of(postfix: Release) -> tuple[int, int]:
    return SUITES[postfix.suite]


def config_for(postfix: Release, folder: Path, profile, version=None) -> Path:
    files = render(profile, Target(hostname="web1", postfix_version=version or version_of(postfix)))
    config = postfix.config_dir(folder, files["main.cf"])
    if "master.cf.entries" in files:
        edited = postfix.postconf(config, "-Me", f"tlsproxy/unix={files['master.cf.entries'].strip()}")
        assert edited.returncode == 0, edited.stderr
    return config


def read_back(postfix: Release, config: Path, *names: str) -> dict[str, str]:
    result = postfix.postconf(config, *names)
    assert result.returncode == 0, result.stderr
    return dict(line.split(" = ", 1) if " = " in line else (line.rstrip(" ="), "")
                for line in result.stdout.splitlines())


def test_each_release_is_the_one_we_meant(postfix):
    result = postfix.run("usr/sbin/postconf", "-d", "-h", "mail_version")
    assert result.returncode == 0, result.stderr
    assert tuple(int(n) for n in result.stdout.split(".")[:2]) == version_of(postfix)
    assert postfix.loaded_outside() == []


@pytest.mark.parametrize("name, port", list(preset_ports()))
def test_preset_port_is_clean_on_every_release(postfix, tmp_path, name, port):
    profile = profile_for(name, port)
    config = config_for(postfix, tmp_path, profile)
    result = postfix.postconf(config, "-n")
    assert (result.returncode, result.stderr) == (0, "")
    version = version_of(postfix)
    assert read_back(postfix, config, "relayhost", "smtp_tls_security_level", "compatibility_level",
                     "smtp_tls_mandatory_protocols", "smtp_tls_wrappermode") == {
        "relayhost": f"[{profile.host}]:{port}",
        "smtp_tls_security_level": "verify",
        "compatibility_level": LEVELS[version],
        "smtp_tls_mandatory_protocols": PROTOCOLS[version],
        "smtp_tls_wrappermode": "yes" if port in providers()[name].implicit_ports else "no",
    }


def test_connector_client_certificate_is_clean_on_every_release(postfix, tmp_path):
    cert, key = client_pair()
    profile = profile_for("office365_connector", 25, client_cert={"cert_pem": cert, "key_pem": key})
    config = config_for(postfix, tmp_path, profile)
    result = postfix.postconf(config, "-n")
    assert (result.returncode, result.stderr) == (0, "")
    assert read_back(postfix, config, "smtp_tls_cert_file", "smtp_tls_key_file",
                     "smtp_sasl_auth_enable") == {
        "smtp_tls_cert_file": "/etc/postfix/relay-client-cert.pem",
        "smtp_tls_key_file": "/etc/postfix/relay-client-key.pem", "smtp_sasl_auth_enable": "no"}


def test_hub_additions_are_clean_on_every_release(postfix, tmp_path):
    version = version_of(postfix)
    config = config_for(postfix, tmp_path, profile_for("ses", 2587))
    hub = render_hub(HubSettings(names=["hub.example.net"]),
                     [HubClient("web1", "pw", ("web1.example.com",))],
                     postfix_version=version)
    with open(config / "main.cf", "a") as main_cf:
        main_cf.write(hub["main.cf.hub"])
    with open(config / "master.cf", "a") as master_cf:
        master_cf.write(hub["master.cf.hub"])
    result = postfix.postconf(config, "-n")
    assert (result.returncode, result.stderr) == (0, "")
    assert read_back(postfix, config, "smtpd_tls_mandatory_protocols") == {
        "smtpd_tls_mandatory_protocols": PROTOCOLS[version]}


ROUTED = {"provider": "custom", "host": "smtp.main.example", "port": 2525, "username": "main",
          "password": "pw-main", "sender_routes": [
              {"senders": ["a.example", "ops@c.example"], "host": "smtp.a.example", "port": 2587,
               "username": "ua", "password": "pw-a"},
              {"senders": ["b.example"], "provider": "sendgrid", "port": 465, "password": "pw-b",
               "tls_verify": "secure", "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n"}]}


def test_sender_routes_are_clean_on_every_release(postfix, tmp_path):
    files = render(parse_profile(ROUTED, environ={}),
                   Target(hostname="web1", postfix_version=version_of(postfix)))
    config = config_for(postfix, tmp_path, parse_profile(ROUTED, environ={}))
    with open(config / "master.cf", "a") as master_cf:
        master_cf.write(files["master.cf.routes"])
    result = postfix.postconf(config, "-n")
    assert (result.returncode, result.stderr) == (0, "")
    assert read_back(postfix, config, "sender_dependent_relayhost_maps",
                     "sender_dependent_default_transport_maps", "smtp_sender_dependent_authentication",
                     "route1_destination_concurrency_limit") == {
        "sender_dependent_relayhost_maps": "${default_database_type}:/etc/postfix/sender_relay",
        "sender_dependent_default_transport_maps": "${default_database_type}:/etc/postfix/sender_transport",
        "smtp_sender_dependent_authentication": "yes", "route1_destination_concurrency_limit": "20"}
    services = postfix.postconf(config, "-P", "route0/unix/smtp_tls_wrappermode",
                                "route1/unix/smtp_tls_wrappermode", "route1/unix/smtp_tls_security_level")
    assert (services.returncode, services.stderr) == (0, "")
    assert services.stdout.splitlines() == ["route0/unix/smtp_tls_wrappermode = no",
                                            "route1/unix/smtp_tls_wrappermode = yes",
                                            "route1/unix/smtp_tls_security_level = secure"]


def test_a_parameter_unknown_to_a_release_makes_it_warn(postfix, tmp_path):
    config = postfix.config_dir(tmp_path, "compatibility_level = 2\nsmtp_tls_no_such_thing = yes\n")
    assert "unused parameter: smtp_tls_no_such_thing=yes" in postfix.postconf(config, "-n").stderr


def test_obsolete_parameter_and_trailing_comment_make_3_10_warn(tmp_path):
    trixie = release("trixie")
    config = trixie.config_dir(tmp_path, "smtp_use_tls = yes\nsmtp_tls_loglevel = 1 # verbose\n")
    warnings = trixie.postconf(config, "-n").stderr
    assert re.search(r'support for parameter "smtp_use_tls" will be removed', warnings)
    assert "#comment after other text is not allowed" in warnings


def test_3_10_rendering_differs_from_3_5_exactly_in_the_version_table(tmp_path):
    bullseye, profile = release("bullseye"), profile_for("sendgrid", 587)
    new = config_for(bullseye, tmp_path / "new", profile, version=(3, 10))
    old = config_for(bullseye, tmp_path / "old", profile)
    changed = {name for name, value in read_back(bullseye, new, "-n").items()
               if read_back(bullseye, old, "-n").get(name) != value and "directory" not in name}
    assert changed == {"compatibility_level", "smtp_tls_mandatory_protocols", "smtp_tls_protocols"}
