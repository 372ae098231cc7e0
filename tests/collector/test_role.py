"""The collector role's plan on pyinfra @fake hosts: offline install, validated settings,
TLS from the project CA or the user's own, a hardened unit, restarts only on change."""

from __future__ import annotations

import tomllib

import pytest
from cryptography import x509
from pyinfra.api import Config, DeployError, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from mailagent import pki
from mailagent.collector.settings import CollectorSettings
from roles.collector import UNIT_PATH, install_collector, render_unit
from roles.collector.wheels import requirements, write_manifest
from tests.roles.conftest import platform_lines

RELEASE = ["/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
           'NAME="Debian GNU/Linux"', 'VERSION_ID="12"', "ID=debian", "---"]
TOKEN = "reg-TOKEN-s3cret-0123456789"


@pytest.fixture
def wheel_dir(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "mailagent-0.1.0-py3-none-any.whl").write_bytes(b"project")
    (folder / "fastapi-0.110.0-py3-none-any.whl").write_bytes(b"dep")
    (folder / "requirements.txt").write_text("fastapi>=0.110\n")
    write_manifest(folder)
    return folder


@pytest.fixture
def plan():
    states = []

    def run(data: dict, installed_manifest: str | None = None):
        replies = {"GNU_LIBC_VERSION": platform_lines("debian12"), "-release": RELEASE, "uname -n": "collector", "uname -s": "Linux",
                   "command -v useradd": "/usr/sbin/useradd"}
        if installed_manifest:
            replies["cat /opt/mailagent-collector/venv/.mailagent-manifest"] = \
                [*installed_manifest.splitlines(), "python python3"]
        hosts = [("@fake/collector", {"fake_delay": 0, "fake_delay_jitter": 0,
                                      "fake_responses": replies, **data})]
        state = State(inventory=Inventory((hosts, {}), collector=(hosts, {})), config=Config())
        states.append(state)
        connect_all(state)
        add_deploy(state, install_collector)
        run_ops(state)
        host = state.inventory.get_host("@fake/collector")
        names = [sorted(state.get_op_meta(h).names)[0] for h in state.get_op_order()]
        return "\n".join(str(c) for c in host.connector.executed_commands), names
    yield run
    for state in states:
        disconnect_all(state)


def test_plan_installs_offline_and_starts(plan, wheel_dir):
    text, names = plan({"collector_wheel_dir": str(wheel_dir), "collector": {
        "url": "https://collector:8480", "registration_token": TOKEN}})
    assert "python3-venv" in text
    assert "useradd -d /var/lib/mailagent-collector -s /usr/sbin/nologin" in text
    assert ("pip install --no-index --find-links /opt/mailagent-collector/wheels "
            "-r /opt/mailagent-collector/wheels/requirements.txt") in text
    assert "systemctl daemon-reload" in text and "enable mailagent-collector.service" in text
    assert TOKEN not in text  # the token travels inside the uploaded file, never in a command
    for wanted in ("Upload fastapi-0.110.0-py3-none-any.whl",
                   "Upload /etc/mailagent-collector/collector.toml", f"Upload {UNIT_PATH}"):
        assert f"mailagent collector | {wanted}" in names
    order = [n.split(" | ")[1] for n in names]
    assert order.index("Upload /etc/mailagent-collector/collector.toml") < order.index(
        "Enable and start mailagent-collector")


def test_second_run_reinstalls_nothing(plan, wheel_dir):
    text, _ = plan({"collector_wheel_dir": str(wheel_dir)},
                   installed_manifest=(wheel_dir / "MANIFEST").read_text())
    assert "pip install" not in text


def test_tls_from_the_project_ca_is_reused(plan, wheel_dir, tmp_path):
    data = {"collector_wheel_dir": str(wheel_dir),
            "collector_server": {"tls": {"ca_dir": str(tmp_path / "ca"),
                                         "names": ["collector.lab.mailagent.test"],
                                         "ips": ["10.0.2.2"]}}}
    _, names = plan(data)
    assert "mailagent collector | Upload /etc/mailagent-collector/tls/key.pem" in names
    issued = tmp_path / "ca" / "issued" / "_fake_collector" / pki.SERVER_CERT
    first = issued.read_bytes()
    cert = x509.load_pem_x509_certificate(first)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["collector.lab.mailagent.test"]
    assert [str(i) for i in alt.get_values_for_type(x509.IPAddress)] == ["10.0.2.2"]
    plan(data)
    assert issued.read_bytes() == first  # same names, still valid: not re-issued


def test_tls_with_the_users_own_files(plan, wheel_dir, tmp_path):
    cert, key = pki.issue_server_cert(pki.create_ca(tmp_path / "theirs", "Their CA")[0].parent,
                                      ["mail.example.org"], [], tmp_path / "own")
    _, names = plan({"collector_wheel_dir": str(wheel_dir),
                     "collector_server": {"tls": {"cert": str(cert), "key": str(key)}}})
    assert "mailagent collector | Upload /etc/mailagent-collector/tls/cert.pem" in names
    with pytest.raises(DeployError, match="is not a file"):
        plan({"collector_wheel_dir": str(wheel_dir),
              "collector_server": {"tls": {"cert": str(tmp_path / "no.pem"), "key": str(key)}}})


@pytest.mark.parametrize("server,problem", [
    ({"listen": "nowhere"}, "collector_server.listen:"),
    ({"alerts": {"bounce_rate": 3}}, "collector_server.alerts.bounce_rate:"),
    ({"typo": 1}, "collector_server.typo:"),
    ({"tls": {"cert": "/x.pem"}}, "collector_server.tls:"),
    ({"tls": {"ca_dir": "/a", "cert": "/b", "key": "/c"}}, "collector_server.tls:"),
])
def test_bad_settings_fail_before_any_command(plan, wheel_dir, server, problem):
    with pytest.raises(DeployError) as raised:
        plan({"collector_wheel_dir": str(wheel_dir), "collector_server": server})
    assert problem in str(raised.value)


def test_unit_is_hardened():
    lines = set(render_unit(CollectorSettings(listen="0.0.0.0:8480")).splitlines())
    for wanted in ("User=mailagent-collector", "NoNewPrivileges=yes", "ProtectSystem=strict",
                   "StateDirectory=mailagent-collector", "CapabilityBoundingSet=",
                   "Restart=on-failure", "PrivateDevices=yes", "SystemCallFilter=@system-service",
                   "Environment=MAILAGENT_COLLECTOR_CONFIG=/etc/mailagent-collector/collector.toml",
                   "ExecStart=/opt/mailagent-collector/venv/bin/mailagent collector serve"):
        assert wanted in lines
    low = render_unit(CollectorSettings(listen="0.0.0.0:443", database_url=(
        "postgresql+psycopg://collector@127.0.0.1/collector")))
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in low.splitlines()
    assert "After=network-online.target postgresql.service" in low.splitlines()
    elsewhere = render_unit(CollectorSettings(database_url="sqlite:////srv/collector/c.db"))
    assert "ReadWritePaths=/srv/collector" in elsewhere.splitlines()


def test_settings_file_round_trips():
    from mailagent.collector.settings import to_toml
    settings = CollectorSettings(registration_token=TOKEN, alerts={"disabled": ["bounce_rate"]})
    assert CollectorSettings.model_validate(tomllib.loads(to_toml(settings))) == settings


def test_runtime_requirements_leave_out_the_control_machine_tools():
    wanted = requirements()
    assert any(r.startswith("fastapi") for r in wanted)
    assert any(r.startswith("sqlalchemy") for r in wanted)
    assert not any(r.startswith(("pyinfra", "paramiko")) for r in wanted)
