"""The agent role's plan on @fake hosts: offline install, settings, key, hardened unit, registration."""

from __future__ import annotations

import tomllib

import pytest
from pyinfra.api import DeployError

from mailagent.agent.settings import AgentSettings
from roles.mailagent import MAILAGENT, render_unit, rendered_units
from roles.mailagent.operations import registration_marker
from tests.roles.conftest import DEBIAN_RELEASE, platform_lines

COLLECTOR = {"url": "http://10.0.2.2:8080", "registration_token": "reg-TOKEN-s3cret"}
KEY_SHA = "ab" * 32


def agent_host(name, wheel_dir, installed=False, **data):
    responses = {"GNU_LIBC_VERSION": platform_lines("debian12"), "-release": DEBIAN_RELEASE, "uname -n": name, "uname -s": "Linux",
                 "command -v useradd": "/usr/sbin/useradd"}
    if installed:  # what a host that already ran this deploy answers
        responses.update({
            "cat /opt/mailagent/venv/.mailagent-manifest": [
                *(wheel_dir / "MANIFEST").read_text().splitlines(), "python python3"],
            "test -e /etc/mailagent/agent.key || test -L": [
                "user=mailagent group=mailagent mode=-rw------- atime=1 mtime=1 ctime=1 size=119 "
                "'/etc/mailagent/agent.key'"],
            "sha256sum /etc/mailagent/agent.key": f"{KEY_SHA}  /etc/mailagent/agent.key",
            "cat /var/lib/mailagent/registered": registration_marker(COLLECTOR["url"], KEY_SHA),
        })
    return (f"@fake/{name}", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": responses,
                              "mailagent_wheel_dir": str(wheel_dir), **data})


def op_names(plan) -> list[str]:
    return [sorted(plan.state.get_op_meta(h).names)[0] for h in plan.state.get_op_order()]


def test_debian_plan_installs_offline_and_starts(run_deploy, wheel_dir):
    plan = run_deploy(install_agent_deploy(), [agent_host("web1", wheel_dir, collector=COLLECTOR)])
    text = plan.text("web1")
    assert "python3-venv" in text
    assert "useradd -d /var/lib/mailagent -s /usr/sbin/nologin -g mailagent -r -M mailagent" in text
    assert "python3 -m venv /opt/mailagent/venv" in text
    assert "pip install --no-index --find-links /opt/mailagent/wheels -r /opt/mailagent/wheels/requirements.txt" in text
    assert "--no-index --no-deps --force-reinstall /opt/mailagent/wheels/mailagent-0.1.0-py3-none-any.whl" in text
    assert f"{MAILAGENT} keygen --key /etc/mailagent/agent.key" in text
    assert "systemctl daemon-reload" in text and "systemctl enable mailagent.service" in text
    assert f"{MAILAGENT} register --settings /etc/mailagent/agent.toml --url http://10.0.2.2:8080" in text
    names = op_names(plan)
    for wanted in ("Upload httpx-0.27.0-py3-none-any.whl", "Upload /etc/mailagent/agent.toml",
                   "Upload /etc/systemd/system/mailagent.service"):
        assert f"mailagent agent | {wanted}" in names
    # install → configure → identity → activate → register
    order = [n.split(" | ")[1].split()[0] for n in names]
    assert order.index("Install") < order.index("Make") < order.index("Enable") < order.index("Register")


def test_token_never_in_a_command(run_deploy, wheel_dir):
    plan = run_deploy(install_agent_deploy(), [agent_host("web1", wheel_dir, collector=COLLECTOR)])
    assert plan.commands("web1")
    assert "reg-TOKEN-s3cret" not in plan.text("web1")


def test_second_run_changes_nothing_that_matters(run_deploy, wheel_dir):
    plan = run_deploy(install_agent_deploy(),
                      [agent_host("web1", wheel_dir, installed=True, collector=COLLECTOR)])
    text = plan.text("web1")
    assert "pip install" not in text
    assert "keygen" not in text
    assert " register " not in text
    # a venv that has the set gets no wheel uploads (each would cost a checksum round trip)
    assert not [n for n in op_names(plan) if n.endswith(".whl") or "wheels/MANIFEST" in n]


def test_a_venv_with_another_set_gets_the_uploads(run_deploy, wheel_dir):
    host = agent_host("web1", wheel_dir, installed=True, collector=COLLECTOR)
    host[1]["fake_responses"]["cat /opt/mailagent/venv/.mailagent-manifest"] = ["sha256 0 mailagent-0.0.9-py3-none-any.whl",
                                                                                "python python3"]
    plan = run_deploy(install_agent_deploy(), [host])
    assert "mailagent agent | Upload httpx-0.27.0-py3-none-any.whl" in op_names(plan)
    assert "pip install --no-index" in plan.text("web1")


def test_no_collector_data_no_registration(run_deploy, wheel_dir):
    plan = run_deploy(install_agent_deploy(), [agent_host("web1", wheel_dir)])
    assert " register " not in plan.text("web1")


@pytest.mark.parametrize("data,problem", [
    ({"mailagent": {"interval_seconds": 0}}, "@fake/web1: mailagent.interval_seconds:"),
    ({"mailagent": {"checks": {"nope": True}}}, "@fake/web1: mailagent.checks:"),
    ({"mailagent": {"surprise": 1}}, "@fake/web1: mailagent.surprise:"),
    ({"collector": {"url": "http://x"}}, "@fake/web1: collector.registration_token: missing"),
])
def test_invalid_data_fails_before_any_command(run_deploy, wheel_dir, data, problem):
    with pytest.raises(DeployError) as raised:
        run_deploy(install_agent_deploy(), [agent_host("web1", wheel_dir, **data)])
    assert problem in str(raised.value)


def test_settings_file_is_the_validated_model(wheel_dir):
    from mailagent.agent.settings import to_toml
    settings = AgentSettings(host="web1", collector_url=COLLECTOR["url"], checks={"relay_reach": False})
    assert AgentSettings.model_validate(tomllib.loads(to_toml(settings))) == settings


def test_unit_holds_no_capability_and_the_counter_alone_has_one():
    unit = render_unit(AgentSettings(host="web1"))
    lines = set(unit.splitlines())
    for wanted in ("User=mailagent", "NoNewPrivileges=yes", "ProtectSystem=strict",
                   "StateDirectory=mailagent", "Restart=on-failure", "ProtectHome=yes",
                   "AmbientCapabilities=", "CapabilityBoundingSet=",
                   "SupplementaryGroups=postdrop systemd-journal",
                   "ExecStartPre=+-/bin/chmod 0644 /var/spool/postfix/pid/master.pid",
                   "ExecStart=/opt/mailagent/venv/bin/python -m mailagent.agent run --settings /etc/mailagent/agent.toml"):
        assert wanted in lines
    assert not [line for line in lines if "CAP_" in line and not line.startswith("#")]
    assert "Wants=network-online.target mailagent-queue-count.socket" in lines
    assert not any(line.startswith("ReadWritePaths") for line in lines)
    textfile = render_unit(AgentSettings(host="web1", metrics_textfile="/var/lib/node_exporter/m.prom"))
    assert "ReadWritePaths=/var/lib/node_exporter" in textfile.splitlines()

    units = rendered_units(AgentSettings(host="web1", postfix_spool="/srv/spool"))
    socket = set(units["/etc/systemd/system/mailagent-queue-count.socket"].splitlines())
    assert {"ListenStream=/run/mailagent-queue-count.sock", "SocketUser=root", "SocketGroup=mailagent",
            "SocketMode=0660", "Accept=no"} <= socket
    counter = set(units["/etc/systemd/system/mailagent-queue-count.service"].splitlines())
    assert {"ExecStart=/opt/mailagent/venv/bin/python -m mailagent.agent.queue_counter --spool /srv/spool",
            "AmbientCapabilities=CAP_DAC_READ_SEARCH", "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
            "DynamicUser=yes", "NoNewPrivileges=yes", "PrivateNetwork=yes",
            "RestrictAddressFamilies=AF_UNIX", "ProtectSystem=strict"} <= counter


def test_plan_uploads_and_starts_the_counter_socket(run_deploy, wheel_dir):
    plan = run_deploy(install_agent_deploy(), [agent_host("web1", wheel_dir, collector=COLLECTOR)])
    names = op_names(plan)
    for wanted in ("Upload /etc/systemd/system/mailagent-queue-count.socket",
                   "Upload /etc/systemd/system/mailagent-queue-count.service",
                   "Enable and start mailagent-queue-count.socket"):
        assert f"mailagent agent | {wanted}" in names
    assert "systemctl enable mailagent-queue-count.socket" in plan.text("web1")
    order = [n.split(" | ")[1] for n in names]
    assert order.index("Enable and start mailagent-queue-count.socket") < order.index("Enable and start mailagent")


def install_agent_deploy():
    from roles.mailagent import install_agent
    return install_agent


def test_admin_token_goes_on_stdin_after_the_registration_token(run_deploy, wheel_dir):
    collector = {**COLLECTOR, "admin_token": "admin-TOKEN-s3cret-0123456789abcdef"}
    plan = run_deploy(install_agent_deploy(), [agent_host("web1", wheel_dir, collector=collector)])
    host = plan.state.inventory.get_host("@fake/web1")
    text = plan.text("web1")
    assert f"{MAILAGENT} register --settings /etc/mailagent/agent.toml" in text
    assert "admin-TOKEN-s3cret" not in text and "reg-TOKEN-s3cret" not in text
    assert host.connector.executed_commands  # the plan ran


def test_the_profile_drain_target_fills_what_the_host_data_leaves_unset():
    from mailagent.relay.deployed import DrainTarget
    from roles.mailagent.settings import settings_for

    class Host:
        name = "web1.example.org"

        def __init__(self, data):
            self.data = data

    target = DrainTarget(relay="[hub.example.net]:1587", ca_file="/etc/postfix/drain-ca.pem")
    assert settings_for(Host({}), str, drain=target).drain == target
    flat = settings_for(Host({"mailagent": {"drain_tls": "implicit"}}), str, drain=target)
    table = settings_for(Host({"mailagent": {"drain": {"tls": "implicit"}}}), str, drain=target)
    assert flat.drain == table.drain == target.model_copy(update={"tls": "implicit"})
    off = settings_for(Host({"mailagent": {"drain_relay": None}}), str, drain=target)
    assert off.drain.relay is None
    assert settings_for(Host({}), str).drain == DrainTarget()
    with pytest.raises(DeployError, match="web1.example.org: mailagent.drain_relay: Value error"):
        settings_for(Host({"mailagent": {"drain_relay": "hub:1587"}}), str, drain=target)
