"""`pyinfra --diff -vvv` of the whole site on @fake hosts shows no secret of any role.

The real CLI runs the real site deploy against @fake hosts (relay + agent, hub, collector), once
with --dry and once executing; every password, token, derived hub login and private key the
deploy handles is searched for in everything it printed.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailagent.control.hub import credentials
from roles.wheelhouse import write_manifest
from tests.relay.certs import client_pair
from tests.roles.conftest import platform_lines

pytestmark = pytest.mark.timeout(300)
PROJECT = Path(__file__).resolve().parents[2]
SECRETS = {
    "relay password": "SG.upstream-Secret-key-7731",
    "registration token": "reg-token-Zq81-0123456789abcdef",
    "database password": "db-Pass-w0rd-4471",
    "sender route password (STARTTLS)": "route-Starttls-pw-5512",
    "sender route password (implicit TLS)": "route-Implicit-pw-6623",
}
CHECK_OK = '{"ok": true, "step": "quit", "elapsed_seconds": 0.1}'
CLIENT_CERT, CLIENT_KEY = client_pair("web2.example.com")
SECRETS["client certificate key (a line of it)"] = CLIENT_KEY.splitlines()[1]
CONNECTOR = {"provider": "office365_connector", "host": "example-com.mail.protection.outlook.com",
             "allow_port_25": True, "client_cert": {"cert_pem": CLIENT_CERT, "key_pem": CLIENT_KEY}}


def _wheel_dir(folder: Path, project_wheel: str) -> Path:
    folder.mkdir()
    (folder / project_wheel).write_bytes(b"project")
    (folder / "requirements.txt").write_text("httpx>=0.27\n")
    write_manifest(folder)
    return folder


def _host(name: str, **data) -> tuple[str, dict]:
    replies = {"GNU_LIBC_VERSION": platform_lines("debian13"), "uname -n": name, "uname -s": "Linux",
               "if_inet6": "yes", "command -v useradd": "/usr/sbin/useradd", "check_relay": CHECK_OK}
    return (f"@fake/{name}", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": replies, **data})


@pytest.fixture
def inventory(tmp_path) -> Path:
    pki = tmp_path / "pki"
    agent_wheels = _wheel_dir(tmp_path / "agent-wheels", "mailagent-0.1.0-py3-none-any.whl")
    collector_wheels = _wheel_dir(tmp_path / "collector-wheels", "mailagent-0.1.0-py3-none-any.whl")
    collector = {"url": "https://collector.example.net:8480",
                 "registration_token": SECRETS["registration token"]}
    # dns_check off: the test's domains are no one's to query (and tests only reach loopback).
    common = {"mailagent_pki_dir": str(pki), "mailagent_wheel_dir": str(agent_wheels),
              "collector": collector, "dns_check": "off"}
    routes = [{"senders": ["billing.example.com"], "host": "smtp.billing.example.net", "port": 2587,
               "username": "billing", "password": SECRETS["sender route password (STARTTLS)"]},
              {"senders": ["alerts@example.com"], "host": "smtp.alerts.example.net", "port": 2465,
               "username": "alerts", "password": SECRETS["sender route password (implicit TLS)"]}]
    upstream = {"provider": "sendgrid", "password": SECRETS["relay password"], "sender_routes": routes}
    hosts = {
        "collector": [_host("collector1", collector_wheel_dir=str(collector_wheels), **common,
                            collector_server={
                                "database_url": f"postgresql://mailagent:{SECRETS['database password']}"
                                                "@db.example.net/mailagent",
                                "tls": {"ca_dir": str(pki / "fleet-ca"),
                                        "names": ["collector.example.net"]}})],
        "hub": [_host("hub", relay=upstream, hub_server={"names": ["hub.example.net"]}, **common)],
        "relays": [_host("web1", relay={"provider": "hub", "host": "hub.example.net"}, **common),
                   _host("web2", relay=CONNECTOR, **common)],
    }
    path = tmp_path / "fake_inventory.py"
    path.write_text("".join(f"{group} = {hosts[group]!r}\n" for group in hosts))
    return path


def _run(inventory: Path, *extra: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    yes = [] if "--dry" in extra else ["-y"]  # --dry with -y skips the change detection
    done = subprocess.run([sys.executable, "-m", "pyinfra", *yes, "--diff", "-vvv", *extra,
                           str(inventory), "deploy/site.py"], cwd=PROJECT, env=env,
                          capture_output=True, encoding="utf-8", errors="replace", timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


@pytest.mark.parametrize("mode", [["--dry"], []], ids=["dry", "run"])
def test_site_output_shows_no_secret(inventory, tmp_path, mode):
    output = _run(inventory, *mode)
    # The deploy really planned the secret files (so the search below is not vacuous).
    for wanted in ("/etc/mailagent-collector/collector.toml", "/etc/mailagent-collector/tls/key.pem",
                   "/etc/postfix/sasl_passwd", "/etc/postfix/hub-tls/key.pem", "/etc/postfix/hub_clients",
                   "/etc/postfix/relay-client-key.pem"):
        assert wanted in output
    assert "/etc/postfix/sender_relay" in output and "sender routes' transports" in output
    secrets = dict(SECRETS)
    secrets["hub login of web1"] = credentials.password_for(tmp_path / "pki", "web1")
    hub_secret = (tmp_path / "pki" / credentials.SECRET_FILE).read_bytes()
    secrets["hub secret (hex)"] = hub_secret.hex()
    secrets["hub secret (base64)"] = base64.b64encode(hub_secret).decode()
    leaked = [what for what, value in secrets.items() if value in output]
    assert leaked == []
    assert "PRIVATE KEY" not in output
