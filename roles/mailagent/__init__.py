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

from io import StringIO
from pathlib import Path

import jinja2
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Hostname
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from mailagent.agent.settings import AgentSettings, to_toml
from mailagent.relay.render import Target, drain_settings
from roles.mailagent.operations import registered, signing_key
from roles.mailagent.settings import COLLECTOR_CA_PATH, collector_ca_pem, collector_of, settings_for
from roles.mailagent.wheels import WheelSet, WheelTarget, wheel_set_for
from roles.platform import Platform, platform_of
from roles.postfix_relay.drained import stays_drained
from roles.postfix_relay.validate import profile_for
from roles.python_env import python_installed, venv_installed

TEMPLATES = Path(__file__).parent / "templates"
USER = "mailagent"
PREFIX = "/opt/mailagent"
VENV = f"{PREFIX}/venv"
WHEELS = f"{PREFIX}/wheels"
MAILAGENT = f"{VENV}/bin/mailagent"
ON_PATH = "/usr/local/bin/mailagent"
SETTINGS_PATH = "/etc/mailagent/agent.toml"
UNIT_PATH = "/etc/systemd/system/mailagent.service"
REGISTERED_MARKER = "/var/lib/mailagent/registered"


@deploy("mailagent agent")
def install_agent(role: str = "relay"):
    platform = platform_of(host)
    settings = settings_for(host, lambda: host.get_fact(Hostname), role=role,
                            drain=_drain(platform), log_source=platform.release.log_source)
    wheels = wheel_set()
    install_done = install(wheels, platform)
    settings_file, unit = configure(settings)
    key = signing_key(name=f"Make the host's signing key {settings.key_path} (if missing)",
                      path=str(settings.key_path), mailagent=MAILAGENT, user=USER)
    activate(any_changed(install_done, settings_file, unit, key), unit,
             running=not (role == "relay" and host.data.get("relay") and stays_drained(host)))
    register(settings)


def _drain(platform: Platform) -> dict | None:
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
    server.group(name=f"Add the {USER} group", group=USER, system=True)
    server.user(name=f"Add the {USER} system user", user=USER, group=USER, system=True,
                home="/var/lib/mailagent", shell="/usr/sbin/nologin", ensure_home=False)
    files.directory(name=f"Create {WHEELS}", path=WHEELS, user="root", group="root", mode="755")
    for wheel in wheels.files:
        files.put(name=f"Upload {wheel.name}", src=str(wheel), dest=f"{WHEELS}/{wheel.name}", mode="644")
    for name in ("requirements.txt", "MANIFEST"):
        files.put(name=f"Upload {WHEELS}/{name}", src=str(wheels.folder / name),
                  dest=f"{WHEELS}/{name}", mode="644")
    installed = venv_installed(name=f"Install the agent into {VENV} (offline, from the uploaded wheels)",
                               venv=VENV, wheels=WHEELS, manifest=wheels.manifest,
                               python=platform.release.python)
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
    unit = files.put(name=f"Upload {UNIT_PATH}", src=StringIO(render_unit(settings)), dest=UNIT_PATH,
                     user="root", group="root", mode="644")
    return settings_file, unit


def render_unit(settings: AgentSettings) -> str:
    """The systemd unit for these settings (templates/etc/systemd/system/mailagent.service.j2)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template(UNIT_PATH.lstrip("/") + ".j2").render(
        service_user=USER, venv=VENV, settings_path=SETTINGS_PATH, write_paths=_write_paths(settings))


def _write_paths(settings: AgentSettings) -> list[str]:
    """Folders outside the StateDirectory the agent writes to (ProtectSystem=strict)."""
    paths = [settings.spool_dir, settings.state_dir]
    if settings.metrics_textfile:
        paths.append(settings.metrics_textfile.parent)
    return sorted({str(p) for p in paths if not str(p).startswith("/var/lib/mailagent")})


def activate(changed, unit, running: bool = True) -> None:
    """Start (or restart) the agent; a drained host's agent stays stopped: its last report told
    the collector the host is drained, and a new one would put it back on the watch list."""
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
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

