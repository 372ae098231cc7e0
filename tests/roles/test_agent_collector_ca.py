"""The agent role's `collector.ca_file`: read on the control machine when the deploy runs."""

from __future__ import annotations

import pytest
from pyinfra.api import DeployError

from mailagent import pki
from roles.mailagent import install_agent
from tests.roles.conftest import fake_host

TOKEN = "reg-token-Zq81-0123456789abcdef"


def _agent(wheel_dir, collector: dict):
    name, data = fake_host("web1", "debian13", {}, **{"command -v useradd": "/usr/sbin/useradd"})
    data.pop("relay")
    return name, {**data, "mailagent_wheel_dir": str(wheel_dir), "collector": collector}


def test_ca_file_is_read_when_the_deploy_runs(run_deploy, uploads, wheel_dir, tmp_path):
    ca_dir = tmp_path / "fleet-ca"
    pki.create_ca(ca_dir, "mailagent fleet CA")
    collector = {"url": "https://collector.example.net:8480", "registration_token": TOKEN,
                 "ca_file": str(ca_dir / "ca.pem")}
    run_deploy(install_agent, [_agent(wheel_dir, collector)])
    assert uploads[("@fake/web1", "/etc/mailagent/collector-ca.pem")] == (ca_dir / "ca.pem").read_text()
    assert 'collector_ca_file = "/etc/mailagent/collector-ca.pem"' in uploads[("@fake/web1", "/etc/mailagent/agent.toml")]


def test_a_missing_ca_file_names_the_command_that_makes_it(run_deploy, wheel_dir, tmp_path):
    collector = {"url": "https://c:8480", "registration_token": TOKEN, "ca_file": str(tmp_path / "ca" / "ca.pem")}
    with pytest.raises(DeployError) as raised:
        run_deploy(install_agent, [_agent(wheel_dir, collector)])
    assert str(raised.value) == (f"@fake/web1: collector.ca_file: {tmp_path}/ca/ca.pem does not exist on the "
                                 f"control machine (make the fleet CA first: mailagent pki init {tmp_path}/ca)")
