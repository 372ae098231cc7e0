"""Drive the real roles through pyinfra's API against @fake hosts (no host is touched)."""

from __future__ import annotations

import pytest
from pyinfra.api import Config, Inventory, State, deploy
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

DEBIAN_RELEASE = ["/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'NAME="Debian GNU/Linux"',
                  'VERSION_ID="12"', "ID=debian", "---"]
ROCKY_RELEASE = ["/etc/os-release", 'NAME="Rocky Linux"', 'VERSION_ID="9.4"', "ID=rocky",
                 'ID_LIKE="rhel centos fedora"', "---"]

# What roles.platform.HostPlatform prints on each kind of host (real versions of late 2026).
PLATFORMS = {
    "debian12": {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)",
                 "machine": "x86_64", "glibc": "2.36", "postfix_candidate": "3.7.11-0+deb12u1",
                 "python3": "3.11.2"},
    "debian13": {"id": "debian", "version_id": "13", "pretty_name": "Debian GNU/Linux 13 (trixie)",
                 "machine": "x86_64", "glibc": "2.41", "postfix_candidate": "3.10.13-0+deb13u1",
                 "python3": "3.13.5"},
    "ubuntu2204": {"id": "ubuntu", "version_id": "22.04", "id_like": "debian",
                   "pretty_name": "Ubuntu 22.04.5 LTS", "machine": "x86_64", "glibc": "2.35",
                   "postfix_candidate": "3.6.4-1ubuntu1.3", "python3": "3.10.12"},
    "ubuntu2404": {"id": "ubuntu", "version_id": "24.04", "id_like": "debian",
                   "pretty_name": "Ubuntu 24.04.3 LTS", "machine": "aarch64", "glibc": "2.39",
                   "postfix_candidate": "3.8.6-1build2", "python3": "3.12.3"},
    "rocky9": {"id": "rocky", "version_id": "9.4", "id_like": "rhel centos fedora",
               "pretty_name": "Rocky Linux 9.4 (Blue Onyx)", "machine": "x86_64", "glibc": "2.34",
               "postfix_candidate": "3.5.25", "python3": "3.9.18", "python3.11_candidate": "3.11.9"},
    "al2023": {"id": "amzn", "version_id": "2023", "id_like": "fedora",
               "pretty_name": "Amazon Linux 2023.9.20251110", "machine": "aarch64", "glibc": "2.34",
               "postfix_candidate": "3.8.5", "python3": "3.9.24", "python3.11_candidate": "3.11.14"},
    "ubuntu2004": {"id": "ubuntu", "version_id": "20.04", "id_like": "debian",
                   "pretty_name": "Ubuntu 20.04.6 LTS", "machine": "x86_64", "glibc": "2.31",
                   "python3": "3.8.10"},
    "debian13-riscv": {"id": "debian", "version_id": "13", "pretty_name": "Debian GNU/Linux 13 (trixie)",
                       "machine": "riscv64", "glibc": "2.41", "python3": "3.13.5"},
}
_RELEASE_OF = {"rocky9": ROCKY_RELEASE}


def platform_lines(kind: str) -> list[str]:
    return [f"{key}={value}" for key, value in PLATFORMS[kind].items()]


def fake_host(name: str, release: list[str] | str, relay: dict, **responses) -> tuple[str, dict]:
    """A @fake host; `release` is a PLATFORMS key (or, as before, os-release lines of Debian 12/Rocky)."""
    kind = release if isinstance(release, str) else ("rocky9" if release is ROCKY_RELEASE else "debian12")
    release_lines = _RELEASE_OF.get(kind, DEBIAN_RELEASE)
    # The platform fact first: its command also reads /etc/os-release.
    replies = {"GNU_LIBC_VERSION": platform_lines(kind), "-release": release_lines,
               "uname -n": name.split("/")[-1], "uname -s": "Linux", "if_inet6": "yes", **responses}
    return (f"@fake/{name}", {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": replies,
                              "relay": relay})


class Plan:
    """The commands a deploy ran on each fake host."""

    def __init__(self, state: State):
        self.state = state

    def commands(self, name: str) -> list[str]:
        host = self.state.inventory.get_host(f"@fake/{name}")
        return [str(command) for command in host.connector.executed_commands]

    def text(self, name: str) -> str:
        return "\n".join(self.commands(name))

    def names(self) -> list[str]:
        """The planned operations' names, in order ("Remove mailagent | Remove /opt/mailagent")."""
        return [sorted(self.state.get_op_meta(h).names)[0] for h in self.state.get_op_order()]


@pytest.fixture
def wheel_dir(tmp_path):
    """A prepared wheel set (for `mailagent_wheel_dir`): the plan needs its names, not real wheels."""
    from roles.wheelhouse import write_manifest

    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "mailagent-0.1.0-py3-none-any.whl").write_bytes(b"project")
    (folder / "httpx-0.27.0-py3-none-any.whl").write_bytes(b"dep")
    (folder / "requirements.txt").write_text("httpx>=0.27\n")
    write_manifest(folder)
    return folder


@deploy("relay and agent")
def relay_and_agent():
    """What deploy/site.py gives a relay host: Postfix, then the agent."""
    from roles.mailagent import install_agent
    from roles.postfix_relay import postfix_relay

    postfix_relay(check=False)
    install_agent()


@pytest.fixture
def uploads(monkeypatch):
    """{(host name, remote path): text} of every file a deploy uploaded to a @fake host."""
    from pyinfra.connectors.fake import FakeConnector

    seen: dict[tuple[str, str], str] = {}
    original = FakeConnector.put_file

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        if hasattr(filename_or_io, "read"):
            filename_or_io.seek(0)
            data = filename_or_io.read()
            filename_or_io.seek(0)
        else:
            with open(filename_or_io, "rb") as source:
                data = source.read()
        seen[(self.host.name, remote_filename)] = data.decode() if isinstance(data, bytes) else data
        return original(self, filename_or_io, remote_filename, *args, **kwargs)

    monkeypatch.setattr(FakeConnector, "put_file", put_file)
    return seen


@pytest.fixture
def run_deploy():
    states = []

    def run(deploy, hosts: list[tuple[str, dict]]) -> Plan:
        inventory = Inventory((hosts, {}), relays=(hosts, {}))
        state = State(inventory=inventory, config=Config())
        states.append(state)
        connect_all(state)
        add_deploy(state, deploy)
        run_ops(state)
        return Plan(state)

    yield run
    for state in states:
        disconnect_all(state)
