"""The running local lab as a pyinfra inventory: `pyinfra inventories/lab.py deploy/site.py`.

Reads the lab's state file (`$MAILAGENT_LAB_DIR`, default ~/.local/state/mailagent/lab), so
`mailagent lab up` must have run. Groups: `relays` (relay1..relayN) and, when the lab has one,
`hub`. Relays point at the lab's smarthost sink when it runs, cycling through its port modes
(2587 STARTTLS, 2465 implicit TLS, 2525 STARTTLS) so one deploy exercises all of them.

Every public module-level list or tuple here becomes a group, so helpers start with `_`.
"""

from pathlib import Path

from pyinfra.api.exceptions import InventoryError

from mailagent.lab import state as _lab_state

# relay1 gets the first, relay2 the second, and so on, cycling.
_SINK_PORTS = (2587, 2465, 2525)


def _connection(entry: dict, key: str) -> dict:
    return {
        "ssh_hostname": entry["ssh_host"],
        "ssh_port": entry["ssh_port"],
        "ssh_user": "root",
        "ssh_key": key,
        # Every lab boots VMs with fresh host keys on reused loopback ports.
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "off",
    }


def _relay_profile(sink: dict, index: int) -> dict:
    return {
        "provider": "custom",
        "host": sink["hostname"],
        "port": _SINK_PORTS[index % len(_SINK_PORTS)],
        "username": sink["username"],
        "password": sink["password"],
        "tls_verify": "secure",
        "ca_pem": Path(sink["ca_cert"]).read_text(),
        "host_lookup": "native",
    }


def _collector(collector: dict, gateway: str) -> dict:
    """Agents reach the collector on the host's loopback through QEMU's gateway address."""
    scheme = collector["url"].split("://", 1)[0]
    return {
        "url": f"{scheme}://collector.lab.mailagent.test:{collector['port']}",
        "registration_token": collector["registration_token"],
        **({"ca_pem": Path(collector["ca_cert"]).read_text()} if collector.get("ca_cert") else {}),
    }


def _hosts(state: dict, group: str) -> list:
    hosts = []
    members = [e for e in state["hosts"] if e["group"] == group]
    for index, entry in enumerate(members):
        data = _connection(entry, state["ssh_key"])
        if group == "relays" and state.get("sink"):
            data["relay"] = _relay_profile(state["sink"], index)
        if state.get("collector"):
            data["collector"] = _collector(state["collector"], state["gateway"])
            # Lab reports come faster than a fleet's, so tests and the demo see figures soon.
            data["mailagent"] = {"interval_seconds": 10, "queue_detail_interval_seconds": 0,
                                 "relay_check_interval_seconds": 60}
        hosts.append((entry["name"], data))
    return hosts


def _load() -> dict:
    try:
        return _lab_state.load()
    except _lab_state.LabNotRunning as exc:
        raise InventoryError(str(exc)) from None


_state = _load()
relays = _hosts(_state, "relays")
if any(e["group"] == "hub" for e in _state["hosts"]):
    hub = _hosts(_state, "hub")
