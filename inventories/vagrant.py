"""The boxes of the project's Vagrantfile: `pyinfra inventories/vagrant.py deploy/site.py`.

Run it from the folder holding the Vagrantfile, after `vagrant up`: pyinfra's @vagrant connector
asks `vagrant status` and `vagrant ssh-config` there. The same environment variables as the
Vagrantfile say which boxes exist: MAILAGENT_RELAYS (default 2), MAILAGENT_HUB=1,
MAILAGENT_COLLECTOR=1. Groups: `relays` (relay1..N), `hub`, `collector`.

Relays hand mail to a smarthost sink on the tester's machine (`mailagent lab sink start --bind
ADDRESS`), over STARTTLS with AUTH, under the name its certificate carries. With a hub box, the
hub relays to the sink and the relays submit to the hub (MAILAGENT_VIA=sink keeps them on the
sink), as in `mailagent lab up --hub`.

    MAILAGENT_SINK_HOST      address the boxes reach the tester's machine at
                             (default 192.168.121.1, libvirt's gateway; VirtualBox: 10.0.2.2)
    MAILAGENT_SINK_PORT      default 2587 (the sink's STARTTLS port; also 2525, or 2465 implicit TLS)
    MAILAGENT_SINK_USER      default lab-relay
    MAILAGENT_SINK_PASSWORD  default: the sink's own, from $MAILAGENT_LAB_DIR/sink/credentials.json
    MAILAGENT_SINK_CA        default $MAILAGENT_LAB_DIR/sink/ca/ca.pem

The boxes are throwaway: new host keys on every `vagrant up`, so nothing goes to known_hosts.
Every public module-level list here becomes a group, so helpers start with `_`.
"""

import json
import os
import secrets
from pathlib import Path

from pyinfra.api.exceptions import InventoryError

from mailagent import pki as _pki
from mailagent.fileio import write_atomic as _write_atomic
from mailagent.lab import paths as _paths

SINK_NAME = "sink.lab.mailagent.test"
HUB_NAME = "hub.lab.mailagent.test"
COLLECTOR_NAME = "collector.lab.mailagent.test"
COLLECTOR_PORT = 8480
# The private network of the Vagrantfile (keep the two in step): hub .10, collector .20, relays .101...
_NET = "192.168.56"
HUB_IP, COLLECTOR_IP = f"{_NET}.10", f"{_NET}.20"
_HUB_PORTS = (1587, 1465)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in ("1", "yes", "true", "on")


def _relay_count() -> int:
    raw = os.environ.get("MAILAGENT_RELAYS", "2")
    if not raw.isdigit() or not 0 <= int(raw) <= 50:
        raise InventoryError(f"MAILAGENT_RELAYS: {raw!r} is not a number of relays (0..50)")
    return int(raw)


def _sink_relay() -> dict:
    """The relay profile pointing at the tester's sink (credentials and CA from its lab dir)."""
    sink_dir = _paths.lab_dir() / "sink"
    password = os.environ.get("MAILAGENT_SINK_PASSWORD")
    ca_file = Path(os.environ.get("MAILAGENT_SINK_CA") or sink_dir / "ca" / _pki.CA_CERT)
    try:
        if password is None:
            password = json.loads((sink_dir / "credentials.json").read_text())["password"]
        ca_pem = ca_file.read_text()
    except (OSError, ValueError, KeyError) as exc:
        raise InventoryError(f"the sink's password or CA is not readable ({exc}); start the sink "
                             "first (`mailagent lab sink start --bind ADDRESS`) or set "
                             "MAILAGENT_SINK_PASSWORD and MAILAGENT_SINK_CA") from None
    return {"provider": "custom", "host": SINK_NAME,
            "port": int(os.environ.get("MAILAGENT_SINK_PORT", "2587")),
            "username": os.environ.get("MAILAGENT_SINK_USER", "lab-relay"), "password": password,
            "tls_verify": "secure", "ca_pem": ca_pem,
            # Postfix must use /etc/hosts: the sink's name exists nowhere else.
            "host_lookup": "native"}


def _state_dir() -> Path:
    return Path(os.environ.get("MAILAGENT_VAGRANT_STATE") or "~/.local/state/mailagent/vagrant").expanduser()


def _collector_token() -> str:
    """One registration token per tester's machine, made once and kept (0600)."""
    path = _state_dir() / "collector-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, (secrets.token_urlsafe(24) + "\n").encode(), 0o600)
    return path.read_text().strip()


def _collector() -> dict:
    """What the agents need to register with the collector box (its CA made here once)."""
    from roles.collector.tls import CA_NAME

    ca_cert, _ = _pki.create_ca(_state_dir() / "ca", CA_NAME)
    return {"url": f"https://{COLLECTOR_NAME}:{COLLECTOR_PORT}",
            "registration_token": _collector_token(), "ca_pem": ca_cert.read_text()}


def _base(with_hub: bool, with_collector: bool) -> dict:
    hosts = {SINK_NAME: os.environ.get("MAILAGENT_SINK_HOST", "192.168.121.1")}
    if with_hub:
        hosts[HUB_NAME] = HUB_IP
    if with_collector:
        hosts[COLLECTOR_NAME] = COLLECTOR_IP
    return {
        # `vagrant up` makes new host keys each time (pyinfra ignores Vagrant's own ssh options).
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "off",
        "_sudo": True,
        "etc_hosts": hosts,
        # The boxes' names are in no public DNS: the deploy's DNS pre-flight sends no query.
        "dns_check": "off",
    }


def _hosts(names: list[str], data: dict) -> list:
    return [(f"@vagrant/{name}", dict(data)) for name in names]


def _via_hub(index: int) -> dict:
    """A relay submitting to the hub box (ports alternating), as inventories/lab.py does."""
    return {"provider": "hub", "host": HUB_NAME, "port": _HUB_PORTS[index % len(_HUB_PORTS)],
            "tls_verify": "secure", "host_lookup": "native"}


def _relays(count: int, data: dict, sink: dict, with_hub: bool) -> list:
    hosts = []
    for index in range(count):
        relay = _via_hub(index) if with_hub and os.environ.get("MAILAGENT_VIA", "hub") == "hub" else sink
        hosts.append((f"@vagrant/relay{index + 1}", {**data, "relay": relay}))
    return hosts


_with_hub, _with_collector = _env_flag("MAILAGENT_HUB"), _env_flag("MAILAGENT_COLLECTOR")
_data = _base(_with_hub, _with_collector)
if _with_collector:
    _data["collector"] = _collector()
_sink = _sink_relay()
if _with_hub:
    # The sink's CA is the project CA here, as in the lab: it signs the hub's certificate too.
    _data["mailagent_pki_dir"] = str(_paths.lab_dir() / "sink" / "ca")
relays = _relays(_relay_count(), _data, _sink, _with_hub)
if _with_hub:
    hub = _hosts(["hub"], {**_data, "relay": _sink, "hub_server": {"names": [HUB_NAME]}})
if _with_collector:
    collector = _hosts(["collector"], {**_data, "collector_server": {
        "tls": {"ca_dir": str(_state_dir() / "ca"), "names": [COLLECTOR_NAME]}}})
