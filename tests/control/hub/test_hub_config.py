"""The hub's pure parts: derived credentials, sender scoping, and its Postfix files read back by
the real `postconf` (main.cf section, master.cf services) and the real `postmap -q` (regexp map)."""

from __future__ import annotations

import shutil
import stat
import subprocess

import pytest
from pydantic import ValidationError

from mailagent.control.hub import credentials
from mailagent.control.hub.render import BLOCK_BEGIN, BLOCK_END, render_hub
from mailagent.control.hub.settings import HubClient, HubSettings
from mailagent.relay.parse import parse_profile
from mailagent.relay.render import render
from mailagent.relay.target import Target
from tests.relay.test_render_postconf import MASTER_CF, postconf

CLIENTS = [HubClient("web1", "pw-one", ("web1", "example.com"), ("noreply@example.org",)),
           HubClient("web2", "pw-two", ("web2",), ("noreply@example.org",))]


def test_passwords_are_derived_stable_distinct_and_the_secret_is_private(tmp_path):
    first = credentials.password_for(tmp_path, "web1")
    assert first == credentials.password_for(tmp_path, "web1") != credentials.password_for(tmp_path, "web2")
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / credentials.SECRET_FILE).stat().st_mode) == 0o600
    (tmp_path / credentials.SECRET_FILE).write_bytes(b"\1" * 32)  # a new secret rotates them all
    assert credentials.password_for(tmp_path, "web1") != first


def test_logins_must_be_plain_names():
    assert credentials.login_for("web1.example.com") == "web1.example.com"
    assert credentials.login_for("@vagrant/relay1") == "relay1"
    with pytest.raises(credentials.CredentialError):
        credentials.login_for("web 1:bad")


def test_settings_reject_half_pairs_and_clashing_ports():
    with pytest.raises(ValidationError, match="together"):
        HubSettings(cert="/c.pem")
    with pytest.raises(ValidationError, match="differ"):
        HubSettings(starttls_port=1587, implicit_port=1587)
    with pytest.raises(ValidationError, match="extra"):
        HubSettings.model_validate({"port": 1587})


@pytest.fixture
def hub_config(tmp_path):
    upstream = parse_profile({"provider": "sendgrid", "password": "SG.upstream-Secret"}, environ={})
    files = render(upstream, Target(hostname="hub"))
    hub = render_hub(HubSettings(names=["hub.example.net"]), CLIENTS)
    (tmp_path / "main.cf").write_text(files["main.cf"] + hub["main.cf.hub"])
    shutil.copy(MASTER_CF, tmp_path / "master.cf")
    with (tmp_path / "master.cf").open("a") as fh:
        fh.write(hub["master.cf.hub"])
    (tmp_path / "hub_sender_logins").write_text(hub["hub_sender_logins"])
    return tmp_path, hub


def test_postconf_reads_the_hub_without_warnings(hub_config):
    config, hub = hub_config
    done = postconf(config, "-n")
    assert done.stderr == ""
    assert "smtpd_sasl_local_domain = mailagent-hub" in done.stdout
    services = postconf(config, "-M").stdout
    assert "0.0.0.0:1587" in services and "0.0.0.0:1465" in services
    options = postconf(config, "-P").stdout
    assert "0.0.0.0:1465/inet/smtpd_tls_wrappermode = yes" in options
    assert "0.0.0.0:1587/inet/smtpd_tls_security_level = encrypt" in options
    assert ("0.0.0.0:1587/inet/smtpd_relay_restrictions = "
            "permit_sasl_authenticated,reject_unauth_destination") in options
    assert "0.0.0.0:1587/inet/smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch" in options
    assert hub["master.cf.hub"].startswith(BLOCK_BEGIN) and hub["master.cf.hub"].rstrip().endswith(BLOCK_END)


@pytest.mark.parametrize("sender, owners", [
    ("root@web1", "web1@mailagent-hub"),
    ("root@web1.localdomain", "web1@mailagent-hub"),
    ("app@example.com", "web1@mailagent-hub"),
    ("noreply@example.org", "web1@mailagent-hub, web2@mailagent-hub"),
    ("root@web2.internal", "web2@mailagent-hub"),
    ("root@web12", None),
    ("root@other.example.org", None),
])
def test_sender_logins_map_owns_exactly_each_hosts_senders(hub_config, sender, owners):
    config, _ = hub_config
    done = subprocess.run(["postmap", "-c", str(config), "-q", sender, f"regexp:{config / 'hub_sender_logins'}"],
                          capture_output=True, text=True)
    assert done.returncode in (0, 1) and "fatal" not in done.stderr, done.stderr
    assert (done.stdout.strip() or None) == owners


def test_secrets_only_in_the_clients_file(hub_config):
    _, hub = hub_config
    assert "pw-one" in hub["hub_clients"] and "pw-two" in hub["hub_clients"]
    for name, content in hub.items():
        if name != "hub_clients":
            assert "pw-" not in content, name


def test_without_scoping_there_is_no_sender_map():
    hub = render_hub(HubSettings(scope_senders=False), CLIENTS)
    assert "smtpd_sender_login_maps" not in hub["main.cf.hub"]
    assert "reject_authenticated_sender_login_mismatch" not in hub["master.cf.hub"]
