"""Every preset on each of its ports, rendered and read back by the real `postconf`."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mailagent.relay.presets import providers
from mailagent.relay.parse import parse_profile
from mailagent.relay.render import render
from mailagent.relay.target import Target

MASTER_CF = Path("/usr/share/postfix/master.cf.dist")
REGIONS = {"ses": "eu-central-1", "mailgun": "eu", "sparkpost": "eu"}
HOSTS = {"hub": "hub.example.com", "office365_connector": "example-com.mail.protection.outlook.com"}


def preset_ports():
    for name, preset in providers().items():
        if name in ("custom",):
            continue
        for port in preset.ports:
            yield name, port


def profile_for(name: str, port: int, **extra):
    data = {"provider": name, "port": port, **extra}
    if providers()[name].credentials != "none":
        data.setdefault("password", "pw-Secret")
    if providers()[name].credentials != "none" and not providers()[name].username:
        data.setdefault("username", "user@example.com")
    if name in REGIONS:
        data["region"] = REGIONS[name]
    if name in HOSTS:
        data["host"] = HOSTS[name]
    if port == 25:
        data["allow_port_25"] = True
    return parse_profile(data, environ={})


def write_config(tmp_path: Path, profile, target=Target(hostname="web1")) -> Path:
    files = render(profile, target)
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    shutil.copy(MASTER_CF, tmp_path / "master.cf")
    if "master.cf.entries" in files:
        postconf(tmp_path, "-Me", f"tlsproxy/unix={files['master.cf.entries'].strip()}")
    return tmp_path


def postconf(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["postconf", "-c", str(config), *args], capture_output=True, text=True,
                          check=True)


def value(config: Path, name: str) -> str:
    return postconf(config, "-h", name).stdout.strip()


def values(config: Path, *names: str) -> dict[str, str]:
    lines = postconf(config, *names).stdout.splitlines()
    return dict(line.split(" = ", 1) if " = " in line else (line.rstrip(" ="), "") for line in lines)


EXPECTED = {
    "relayhost": None,
    "smtp_tls_wrappermode": None,
    "smtp_tls_security_level": "verify",
    "smtp_sasl_auth_enable": "yes",
    "smtp_sasl_security_options": "noanonymous, noplaintext",
    "smtp_sasl_tls_security_options": "noanonymous",
    "inet_interfaces": "loopback-only",
    "mydestination": "",
}


@pytest.mark.parametrize("name, port", list(preset_ports()))
def test_preset_port_renders_a_config_postconf_accepts(tmp_path, name, port):
    profile = profile_for(name, port)
    config = write_config(tmp_path, profile)
    result = postconf(config, "-n")
    assert result.stderr == ""
    implicit = port in providers()[name].implicit_ports
    expected = dict(EXPECTED, relayhost=f"[{profile.host}]:{port}",
                    smtp_tls_wrappermode="yes" if implicit else "no")
    if not profile.username:  # a relay that accepts this host without AUTH
        expected = {key: value for key, value in expected.items()
                    if not key.startswith("smtp_sasl")} | {"smtp_sasl_auth_enable": "no"}
    assert values(config, *expected) == expected
    assert "pw-Secret" not in (config / "main.cf").read_text()


def test_sasl_map_key_matches_relayhost_and_index_is_private(tmp_path):
    profile = profile_for("ses", 2465)
    config = write_config(tmp_path, profile)
    sasl = config / "sasl_passwd"
    sasl.chmod(0o600)
    subprocess.run(["postmap", "-c", str(config), f"hash:{sasl}"], check=True)
    index = config / "sasl_passwd.db"
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    found = subprocess.run(["postmap", "-c", str(config), "-q", value(config, "relayhost"), f"hash:{sasl}"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == f"{profile.username}:pw-Secret"


def test_null_client_forwards_root_and_rewrites_senders(tmp_path):
    profile = profile_for("ses", 2587, sender_address="noreply@example.com",
                          forward_root_to="ops@example.com", myorigin="example.com")
    config = write_config(tmp_path, profile)
    assert postconf(config, "-n").stderr == ""
    for name in ("generic", "virtual"):
        subprocess.run(["postmap", "-c", str(config), f"hash:{config / name}"], check=True)
    query = lambda key, table: subprocess.run(  # noqa: E731
        ["postmap", "-c", str(config), "-q", key, f"hash:{config / table}"], capture_output=True, text=True).stdout.strip()
    assert query("@web1", "generic") == "noreply@example.com"
    assert query("root", "virtual") == "ops@example.com"
    assert value(config, "myorigin") == "example.com"
    assert value(config, "smtp_generic_maps") == "${default_database_type}:/etc/postfix/generic"


def test_limits_lifetimes_fallbacks_and_mechanisms(tmp_path):
    profile = profile_for("ses", 2587, rate_delay="1s", concurrency=4, queue_lifetime="1d",
                          sasl_mechanisms=["plain", "login"],
                          fallback_relays=[{"host": "backup.example.com", "port": 2587}])
    config = write_config(tmp_path, profile)
    assert postconf(config, "-n").stderr == ""
    assert value(config, "smtp_destination_rate_delay") == "1s"
    assert value(config, "smtp_destination_concurrency_limit") == "4"
    assert value(config, "maximal_queue_lifetime") == "1d"
    assert value(config, "smtp_sasl_mechanism_filter") == "plain, login"
    assert value(config, "smtp_fallback_relay") == "[backup.example.com]:2587"
    assert "[backup.example.com]:2587 " in (config / "sasl_passwd").read_text()


def test_ipv4_only_host_and_private_ca(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    profile = parse_profile({"provider": "hub", "host": "hub.internal", "username": "web1",
                             "password": "p", "tls_verify": "secure", "ca_pem": pem}, environ={})
    config = write_config(tmp_path, profile, Target(hostname="web1", has_ipv6=False))
    assert postconf(config, "-n").stderr == ""
    assert value(config, "inet_protocols") == "ipv4"
    assert value(config, "mynetworks") == "127.0.0.0/8"
    assert value(config, "smtp_tls_CAfile") == "/etc/postfix/relay-ca.pem"
    assert value(config, "smtp_tls_security_level") == "secure"


def test_tls_connection_reuse_enables_tlsproxy(tmp_path):
    on, off = tmp_path / "on", tmp_path / "off"
    on.mkdir(), off.mkdir()
    write_config(on, profile_for("sendgrid", 2525))
    write_config(off, profile_for("sendgrid", 2525, tls_connection_reuse=False))
    assert value(on, "smtp_tls_connection_reuse") == "yes"
    assert postconf(on, "-M", "tlsproxy/unix").stdout.startswith("tlsproxy")
    assert value(off, "smtp_tls_connection_reuse") == "no"
    assert postconf(off, "-M", "tlsproxy/unix").stdout == ""
