"""The running local lab as a pyinfra inventory: `pyinfra inventories/lab.py deploy/site.py`.

Reads the lab's state file (`$MAILAGENT_LAB_DIR`, default ~/.local/state/mailagent/lab), so
`mailagent lab up` must have run. Groups: `relays` (relay1..relayN) and, when the lab has one,
`hub`. Each host carries `lab_os` (`{"id": "debian", "version": "13", "suite": "trixie"}`): a
lab may mix releases. Relays point at the lab's smarthost sink when it runs, cycling through its port modes
(2587 STARTTLS, 2465 implicit TLS, 2525 STARTTLS) so one deploy exercises all of them.

With a hub (`mailagent lab up --hub`), the hub relays to the sink and the relays submit to the
hub (`provider: hub`, ports 1587/1465 alternating) with credentials the deploy derives; set
MAILAGENT_LAB_VIA=sink to keep them on the sink, with the hub as their drain relay instead.
The lab CA (the sink's) is the project CA: it signs the hub's certificate, and the hub login
secret lives next to it.

Every public module-level list or tuple here becomes a group, so helpers start with `_`.
"""

import os
from pathlib import Path

from pyinfra.api.exceptions import InventoryError

from mailagent.lab import state as _lab_state

# relay1 gets the first, relay2 the second, and so on, cycling.
_SINK_PORTS = (2587, 2465, 2525)
_HUB_PORTS = (1587, 1465)
_HUB_NAME = "hub.lab.mailagent.test"


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


def _hub_profile(index: int) -> dict:
    return {"provider": "hub", "host": _HUB_NAME, "port": _HUB_PORTS[index % len(_HUB_PORTS)],
            "tls_verify": "secure", "host_lookup": "native"}


def _relay_data(state: dict, group: str, index: int) -> dict:
    sink, has_hub = state.get("sink"), any(e["group"] == "hub" for e in state["hosts"])
    if not sink:
        return {}
    data = {"mailagent_pki_dir": str(Path(sink["ca_cert"]).parent)}
    if group == "hub":
        data["relay"] = _relay_profile(sink, 0)
        data["hub_server"] = {"names": [_HUB_NAME]}
    elif has_hub and os.environ.get("MAILAGENT_LAB_VIA", "hub") == "hub":
        data["relay"] = _hub_profile(index)
    else:
        data["relay"] = _relay_profile(sink, index)
        if has_hub:
            data["relay"]["drain_relay"] = {"host": _HUB_NAME, "port": _HUB_PORTS[0]}
    return data


def _hosts(state: dict, group: str) -> list:
    hosts = []
    members = [e for e in state["hosts"] if e["group"] == group]
    for index, entry in enumerate(members):
        data = _connection(entry, entry["ssh_key"])
        data["lab_os"] = entry["os"]
        # Lab names are in no public DNS: the deploy's DNS pre-flight sends no query.
        data["dns_check"] = "off"
        data.update(_relay_data(state, group, index))
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
