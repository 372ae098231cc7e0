"""The deploy plan per platform on @fake hosts: packages, the Python installed, the agent's log
source, the Postfix variant; and an unsupported host stops the deploy before any change."""

from __future__ import annotations

import tomllib

import pytest
from pyinfra.api import DeployError

from mailagent.agent.settings import AgentSettings
from roles.platform import RELEASES, resolve
from tests.roles.conftest import relay_and_agent, PLATFORMS, fake_host

SES = {"provider": "ses", "region": "eu-west-1", "port": 2587, "username": "AKIAEXAMPLE",
       "password": "ses-secret-Pa55"}


def relay_host(kind: str, wheel_dir) -> tuple[str, dict]:
    name, data = fake_host(kind, kind, SES, **{"command -v useradd": "/usr/sbin/useradd"})
    return name, {**data, "mailagent_wheel_dir": str(wheel_dir)}


# kind: (package manager line, python the venv is made with, log source, compatibility level)
EXPECTED = {
    "debian13": ("apt-get", "python3 -m venv", "journal", "3.6"),
    "ubuntu2204": ("apt-get", "python3 -m venv", "journal", "3.6"),
    "ubuntu2404": ("apt-get", "python3 -m venv", "journal", "3.6"),
    "rocky9": ("dnf install -y postfix cyrus-sasl-plain", "python3.11 -m venv", "journal", "2"),
    "al2023": ("dnf install -y postfix cyrus-sasl-plain", "python3.11 -m venv", "journal", "3.6"),
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_plan_follows_the_platform(run_deploy, uploads, wheel_dir, kind):
    manager, venv, log_source, level = EXPECTED[kind]
    plan = run_deploy(relay_and_agent, [relay_host(kind, wheel_dir)])
    text = plan.text(kind)
    assert manager in text
    assert ("dnf install" in text) == (manager != "apt-get") and ("apt-get" in text) == (manager == "apt-get")
    assert f"{venv} /opt/mailagent/venv" in text
    if kind in ("rocky9", "al2023"):
        assert "dnf install -y python3.11" in text
    else:
        assert "python3 python3-venv" in text
    host = f"@fake/{kind}"
    settings = AgentSettings.model_validate(tomllib.loads(uploads[(host, "/etc/mailagent/agent.toml")]))
    assert str(settings.log_source) == log_source
    main_cf = uploads[(host, "/etc/postfix/main.cf")].splitlines()
    assert f"compatibility_level = {level}" in main_cf
    assert "ses-secret-Pa55" not in text


def test_platform_facts_are_resolved_from_the_host():
    rocky = resolve(PLATFORMS["rocky9"])
    assert (rocky.release.python, rocky.python, rocky.postfix) == ("python3.11", "3.11.9", (3, 5))
    al = resolve(PLATFORMS["al2023"])
    assert (al.machine, al.glibc, al.python, al.postfix) == ("aarch64", (2, 34), "3.11.14", (3, 8))
    trixie = resolve(PLATFORMS["debian13"])
    assert (trixie.python, trixie.postfix, trixie.release.postfix_unit) == ("3.13.5", (3, 10), "postfix")
    # Nothing installed and no package candidate known: the release's own versions.
    bare = resolve({"id": "debian", "version_id": "12", "machine": "x86_64", "glibc": "2.36"})
    assert (bare.python, bare.postfix) == ("3.11.2", (3, 7))


def test_unsupported_hosts_stop_the_deploy_before_any_change(run_deploy, wheel_dir):
    hosts = [relay_host("debian13", wheel_dir), relay_host("ubuntu2004", wheel_dir),
             relay_host("debian13-riscv", wheel_dir)]
    with pytest.raises(DeployError) as raised:
        run_deploy(relay_and_agent, hosts)
    lines = str(raised.value).splitlines()
    assert lines[0] == "unsupported hosts, nothing was changed:"
    assert sorted(lines[1:]) == [
        "@fake/debian13-riscv: unsupported platform: Debian GNU/Linux 13 (trixie) on riscv64 "
        "(glibc 2.41); supported: " + ", ".join(r.name for r in RELEASES)
        + "; on x86_64 or aarch64 with glibc 2.34+",
        "@fake/ubuntu2004: unsupported platform: Ubuntu 20.04.6 LTS on x86_64 (glibc 2.31); "
        "supported: " + ", ".join(r.name for r in RELEASES) + "; on x86_64 or aarch64 with glibc 2.34+",
    ]


def test_an_old_default_python_without_the_package_is_refused():
    facts = {**PLATFORMS["rocky9"], "python3.11_candidate": "", "python3.11": ""}
    assert resolve(facts).python == "3.11.9"  # the release's packaged python3.11
    old = resolve({**PLATFORMS["ubuntu2204"], "python3": "3.9.5"})
    assert isinstance(old, str) and old.endswith("has Python 3.9.5 as python3; the agent runs on 3.10 to 3.13")


def test_a_two_part_python_version_becomes_a_full_one():
    assert resolve({**PLATFORMS["debian13"], "python3": "", "python3_candidate": "3.13"}).python == "3.13.5"
    newer = resolve({**PLATFORMS["debian13"], "python3": "", "python3_candidate": "3.14"})
    assert newer.endswith("has Python 3.14.0 as python3; the agent runs on 3.10 to 3.13")
