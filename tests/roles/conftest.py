"""Drive the real roles through pyinfra's API against @fake hosts (no host is touched)."""

from __future__ import annotations

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

DEBIAN_RELEASE = ["/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'NAME="Debian GNU/Linux"',
                  'VERSION_ID="12"', "ID=debian", "---"]
ROCKY_RELEASE = ["/etc/os-release", 'NAME="Rocky Linux"', 'VERSION_ID="9.4"', "ID=rocky",
                 'ID_LIKE="rhel centos fedora"', "---"]


def fake_host(name: str, release: list[str], relay: dict, **responses) -> tuple[str, dict]:
    replies = {"-release": release, "uname -n": name.split("/")[-1], "uname -s": "Linux",
               "if_inet6": "yes", **responses}
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
