"""The static_hosts role: its plan on @fake hosts, and that plan's commands run on a real file."""

from __future__ import annotations

import re
import subprocess

import pytest
from pyinfra.api import DeployError

from roles.static_hosts import entries_of, managed_line, static_hosts

SINK = "sink.lab.mailagent.test"
HOSTS = "127.0.0.1 localhost\n127.0.1.1 relay1\n"


def fake_host(etc_hosts, hosts_file: str = HOSTS) -> tuple[str, dict]:
    """A host whose /etc/hosts holds `hosts_file`: grep -E answers as the real grep would."""
    lines = hosts_file.splitlines()

    def grep(pattern: str) -> list[str]:
        return [line for line in lines if re.search(pattern.replace("[[:space:]]", r"\s"), line)]

    # The connector answers from a table (substring of the command -> output lines).
    responses = {pattern: grep(pattern) for name, address in (etc_hosts or {}).items()
                 for pattern in (managed_line(name), f"^{address} {name}$")}
    return ("@fake/relay1", {"fake_delay": 0, "fake_delay_jitter": 0, "etc_hosts": etc_hosts,
                             "fake_responses": responses})


def run(run_deploy, etc_hosts, hosts_file: str = HOSTS) -> list[str]:
    """The commands the deploy ran that change something (fact-gathering greps left out)."""
    commands = run_deploy(static_hosts, [fake_host(etc_hosts, hosts_file)]).commands("relay1")
    return [c for c in commands if not c.startswith("grep ")]


def apply(commands: list[str], path) -> str:
    """Run the planned commands against a real file standing in for /etc/hosts."""
    for command in commands:
        subprocess.run(["sh", "-c", command.replace("/etc/hosts", str(path))], check=True)
    return path.read_text()


def test_missing_entry_is_appended(run_deploy, tmp_path):
    commands = run(run_deploy, {SINK: "192.168.121.1"})
    assert len(commands) == 1
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    assert apply(commands, path) == \
        HOSTS + f"192.168.121.1 {SINK}\n"


def test_right_entry_changes_nothing(run_deploy):
    assert run(run_deploy, {SINK: "192.168.121.1"}, HOSTS + f"192.168.121.1 {SINK}\n") == []


def test_changed_address_replaces_the_line_in_place(run_deploy, tmp_path):
    old = HOSTS + f"10.0.2.2\t{SINK}\n::1 ip6-localhost\n"
    commands = run(run_deploy, {SINK: "192.168.121.1"}, old)
    path = tmp_path / "hosts"
    path.write_text(old)
    assert len(commands) == 1 and commands[0].startswith("sed -E")
    assert apply(commands, path) == HOSTS + f"192.168.121.1 {SINK}\n::1 ip6-localhost\n"


def test_other_names_and_lines_listing_several_names_stay(tmp_path):
    text = f"10.0.2.2 {SINK} collector.lab.mailagent.test\n10.0.2.2 x{SINK}\n"
    path = tmp_path / "hosts"
    path.write_text(text)
    found = subprocess.run(["grep", "-E", managed_line(SINK), str(path)], capture_output=True, text=True)
    assert found.returncode == 1 and found.stdout == ""


def test_no_data_no_commands(run_deploy):
    assert run(run_deploy, None) == []


@pytest.mark.parametrize(("data", "problem"), [
    (["sink"], "etc_hosts: must be a dict"),
    ({"bad name!": "10.0.0.1"}, "etc_hosts.bad name!: not a host name"),
    ({SINK: "192.168.121.300"}, f"etc_hosts.{SINK}: '192.168.121.300' is not an IP address"),
])
def test_bad_data_names_the_field(data, problem):
    with pytest.raises(DeployError) as raised:
        entries_of(data, "@fake/relay1")
    assert f"@fake/relay1: {problem}" in str(raised.value)


def test_entries_are_normalised_and_sorted():
    assert entries_of({"b.test": "10.0.0.2", "a.test": "fd00::0001"}, "h") == [
        ("a.test", "fd00::1"), ("b.test", "10.0.0.2")]
