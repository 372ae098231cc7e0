"""The queue-health agent on a relay host: offline install from wheels, settings, key, service.

install -> configure -> identity -> activate -> register. Wheels are built on the control machine
(roles/mailagent/wheels.py) and uploaded, so hosts need no package index. Settings are validated
with the agent's own model before anything is uploaded. Only activate starts or restarts the
service, and only when something it runs changed.

Host data: `mailagent` (AgentSettings fields), `collector` ({url, registration_token}),
`mailagent_wheel_dir` (a prepared wheel set, skipping the build; used by tests and air-gapped
control machines).
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import jinja2
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.server import Hostname
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from mailagent.agent import queue_counter
from mailagent.agent.settings import AgentSettings, to_toml
from mailagent.relay.deployed import DrainTarget
from mailagent.relay.render import drain_settings
from mailagent.relay.target import Target
from roles.accounts import system_user
from roles.mailagent.operations import registered, signing_key
from roles.mailagent.settings import COLLECTOR_CA_PATH, collector_ca_pem, collector_of, settings_for
from roles.mailagent.wheels import WheelSet, WheelTarget, wheel_set_for
from roles.platform import Platform, platform_of
from roles.postfix_relay.drained import stays_drained
from roles.postfix_relay.validate import profile_for
from roles.python_env import python_installed, wheels_installed

TEMPLATES = Path(__file__).parent / "templates"
USER = "mailagent"
PREFIX = "/opt/mailagent"
VENV = f"{PREFIX}/venv"
WHEELS = f"{PREFIX}/wheels"
MAILAGENT = f"{VENV}/bin/mailagent"
ON_PATH = "/usr/local/bin/mailagent"
SETTINGS_PATH = "/etc/mailagent/agent.toml"
UNIT_PATH = "/etc/systemd/system/mailagent.service"
COUNTER = "mailagent-queue-count"  # the queue counter: agent/queue_counter.py
COUNTER_SOCKET_PATH = f"/etc/systemd/system/{COUNTER}.socket"
COUNTER_SERVICE_PATH = f"/etc/systemd/system/{COUNTER}.service"
REGISTERED_MARKER = "/var/lib/mailagent/registered"


@deploy("mailagent agent")
def install_agent(role: str = "relay"):
    platform = platform_of(host)
    settings = settings_for(host, lambda: host.get_fact(Hostname), role=role,
                            drain=_drain(platform), log_source=platform.release.log_source)
    wheels = wheel_set()
    install_done = install(wheels, platform)
    settings_file, units = configure(settings)
    key = signing_key(name=f"Make the host's signing key {settings.key_path} (if missing)",
                      path=str(settings.key_path), mailagent=MAILAGENT, user=USER)
    activate(any_changed(install_done, settings_file, units.agent, key), units,
             running=not (role == "relay" and host.data.get("relay") and stays_drained(host)))
    register(settings)


def _drain(platform: Platform) -> DrainTarget | None:
    """The relay profile's drain target, as `mailagent drain` needs it (None without one)."""
    if not host.data.get("relay"):
        return None
    return drain_settings(profile_for(host), Target(os_family=platform.family))


def wheel_set() -> WheelSet:
    platform = platform_of(host)
    target = WheelTarget(python=platform.python, machine=platform.machine, glibc=platform.glibc)
    return wheel_set_for(target, prepared=host.data.get("mailagent_wheel_dir"))


def install(wheels: WheelSet, platform: Platform):
    """System user, Python, the uploaded wheels, and the venv built from them offline."""
    python_installed(platform)
    system_user(USER, home="/var/lib/mailagent")
    installed = wheels_installed("the agent", wheels, WHEELS, VENV, platform.release.python)
    files.link(name=f"Put mailagent on the PATH ({ON_PATH})", path=ON_PATH, target=MAILAGENT)
    return installed


def configure(settings: AgentSettings):
    files.directory(name="Create /etc/mailagent", path="/etc/mailagent", user="root", group=USER,
                    mode="750")
    files.directory(name="Create /var/lib/mailagent", path="/var/lib/mailagent", user=USER, group=USER,
                    mode="750")
    collector = collector_of(host)
    ca_pem = collector_ca_pem(host, collector) if collector else None
    if ca_pem:
        files.put(name=f"Upload the collector's CA {COLLECTOR_CA_PATH}", src=StringIO(ca_pem),
                  dest=COLLECTOR_CA_PATH, mode="644")
    settings_file = files.put(name=f"Upload {SETTINGS_PATH}", src=StringIO(to_toml(settings)),
                              dest=SETTINGS_PATH, user="root", group=USER, mode="640")
    units = Units(*(files.put(name=f"Upload {path}", src=StringIO(text), dest=path, user="root",
                              group="root", mode="644")
                    for path, text in rendered_units(settings).items()))
    return settings_file, units


@dataclass
class Units:
    """The upload operations of the agent's unit and of the queue counter's socket and service."""

    agent: OperationMeta
    counter_socket: OperationMeta
    counter: OperationMeta

    def did_change(self) -> bool:
        return any(op.did_change() for op in (self.agent, self.counter_socket, self.counter))


def rendered_units(settings: AgentSettings) -> dict[str, str]:
    """Path -> text of the three units, in the order of `Units`."""
    counter = {"socket_unit": f"{COUNTER}.socket", "socket_path": str(queue_counter.SOCKET),
               "service_group": USER, "venv": VENV, "spool": str(settings.postfix_spool)}
    return {UNIT_PATH: render_unit(settings),
            COUNTER_SOCKET_PATH: _render(COUNTER_SOCKET_PATH, **counter),
            COUNTER_SERVICE_PATH: _render(COUNTER_SERVICE_PATH, **counter)}


def render_unit(settings: AgentSettings) -> str:
    """The agent's systemd unit for these settings (templates/etc/systemd/system/mailagent.service.j2)."""
    return _render(UNIT_PATH, service_user=USER, venv=VENV, settings_path=SETTINGS_PATH,
                   write_paths=_write_paths(settings), counter_socket_unit=f"{COUNTER}.socket",
                   spool=str(settings.postfix_spool))


def _render(path: str, **values) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template(path.lstrip("/") + ".j2").render(**values)


def _write_paths(settings: AgentSettings) -> list[str]:
    """Folders outside the StateDirectory the agent writes to (ProtectSystem=strict)."""
    paths = [settings.spool_dir, settings.state_dir]
    if settings.metrics_textfile:
        paths.append(settings.metrics_textfile.parent)
    return sorted({str(p) for p in paths if not str(p).startswith("/var/lib/mailagent")})


def activate(changed, units: Units, running: bool = True) -> None:
    """Start (or restart) the queue counter's socket and the agent; a drained host's agent stays
    stopped: its last report told the collector the host is drained, and a new one would put it
    back on the watch list. The counter starts at the agent's first question; when its code or
    units changed, a running one is stopped, and the next question starts the new one."""
    systemd.daemon_reload(name="Reload systemd units", _if=units.did_change)
    systemd.service(name=f"Stop {COUNTER} (install or its units changed; its socket starts it again)",
                    service=COUNTER, running=False,
                    _if=lambda: changed() or units.counter.did_change() or units.counter_socket.did_change())
    systemd.service(name=f"Enable and start {COUNTER}.socket", service=f"{COUNTER}.socket",
                    running=True, enabled=True)
    systemd.service(name=f"Restart {COUNTER}.socket (its unit changed)", service=f"{COUNTER}.socket",
                    restarted=True, _if=units.counter_socket.did_change)
    if not running:
        systemd.service(name="Keep mailagent stopped (host drained)", service="mailagent",
                        running=False, enabled=True)
        return
    systemd.service(name="Enable and start mailagent", service="mailagent", running=True, enabled=True)
    systemd.service(name="Restart mailagent (install, settings, unit or key changed)",
                    service="mailagent", restarted=True, _if=changed)


def register(settings: AgentSettings) -> None:
    collector = collector_of(host)
    if collector is None:
        host.noop("no collector data: the host's key is not registered anywhere")
        return
    registered(name=f"Register the host's public key with {collector['url']}", url=collector["url"],
               token=str(collector["registration_token"]), mailagent=MAILAGENT,
               settings_path=SETTINGS_PATH, key_path=str(settings.key_path), marker=REGISTERED_MARKER,
               admin_token=str(collector["admin_token"]) if collector.get("admin_token") else None)

