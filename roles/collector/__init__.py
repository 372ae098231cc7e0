"""The fleet collector as a hardened systemd service, installed offline from uploaded wheels.

install -> configure (settings, TLS, unit) -> activate. Settings are validated with the
collector's own model before anything is uploaded; only activate starts or restarts the
service, and only when something it runs changed. The schema is migrated by the service itself
when it starts. Host data: see roles/collector/settings.py; `collector_wheel_dir` names a
prepared wheel set (skips the build; tests and air-gapped control machines).
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import jinja2
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed
from sqlalchemy.engine import make_url

from mailagent.collector.settings import CollectorSettings, to_toml
from roles.collector.operations import venv_installed
from roles.collector.settings import ETC, TLS_CERT, TLS_KEY, TlsSource, settings_for
from roles.collector.tls import certificate_files
from roles.collector.wheels import WheelSet, build_wheels

TEMPLATES = Path(__file__).parent / "templates"
USER = "mailagent-collector"
PREFIX = "/opt/mailagent-collector"
VENV, WHEELS = f"{PREFIX}/venv", f"{PREFIX}/wheels"
STATE = "/var/lib/mailagent-collector"
SETTINGS_PATH = f"{ETC}/collector.toml"
UNIT_PATH = "/etc/systemd/system/mailagent-collector.service"


@deploy("mailagent collector")
def install_collector():
    settings, tls = settings_for(host)
    installed = install(wheel_set())
    changed = [installed, *configure(settings, tls)]
    activate(any_changed(*changed), changed[-1])


def wheel_set() -> WheelSet:
    prepared = host.data.get("collector_wheel_dir")
    return WheelSet(Path(prepared)) if prepared else build_wheels()


def install(wheels: WheelSet):
    """Service user, Python, the uploaded wheels and the venv built from them offline."""
    apt.packages(name="Install Python 3 with venv", packages=["python3", "python3-venv"],
                 update=True, cache_time=3600)
    server.group(name=f"Add the {USER} group", group=USER, system=True)
    server.user(name=f"Add the {USER} system user", user=USER, group=USER, system=True,
                home=STATE, shell="/usr/sbin/nologin", ensure_home=False)
    files.directory(name=f"Create {WHEELS}", path=WHEELS, user="root", group="root", mode="755")
    for wheel in wheels.files:
        files.put(name=f"Upload {wheel.name}", src=str(wheel), dest=f"{WHEELS}/{wheel.name}",
                  mode="644")
    for name in ("requirements.txt", "MANIFEST"):
        files.put(name=f"Upload {WHEELS}/{name}", src=str(wheels.folder / name),
                  dest=f"{WHEELS}/{name}", mode="644")
    return venv_installed(name=f"Install the collector into {VENV} (offline, from the wheels)",
                          venv=VENV, wheels=WHEELS, manifest=wheels.manifest)


def configure(settings: CollectorSettings, tls: TlsSource | None) -> list:
    """Settings file, certificate and key, systemd unit; returns their operations (unit last)."""
    files.directory(name=f"Create {ETC}", path=ETC, user="root", group=USER, mode="750")
    ops = [files.put(name=f"Upload {SETTINGS_PATH}", src=StringIO(to_toml(settings)),
                     dest=SETTINGS_PATH, user="root", group=USER, mode="640")]
    if tls is not None:
        cert, key = certificate_files(tls, host.name)
        files.directory(name=f"Create {ETC}/tls", path=f"{ETC}/tls", user="root", group=USER,
                        mode="750")
        ops.append(files.put(name=f"Upload {TLS_CERT}", src=str(cert), dest=TLS_CERT,
                             user="root", group=USER, mode="644"))
        ops.append(files.put(name=f"Upload {TLS_KEY}", src=str(key), dest=TLS_KEY,
                             user="root", group=USER, mode="640"))
    ops.append(files.put(name=f"Upload {UNIT_PATH}", src=StringIO(render_unit(settings)),
                         dest=UNIT_PATH, user="root", group="root", mode="644"))
    return ops


def render_unit(settings: CollectorSettings) -> str:
    """The systemd unit for these settings (templates/etc/systemd/system/…service.j2)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    url = make_url(settings.database_url)
    return env.get_template(UNIT_PATH.lstrip("/") + ".j2").render(
        service_user=USER, venv=VENV, settings_path=SETTINGS_PATH,
        state_directory=Path(STATE).name, write_paths=_write_paths(url),
        wants_postgresql=url.get_backend_name() == "postgresql" and url.host in (
            None, "localhost", "127.0.0.1", "::1"),
        bind_low_port=settings.listen_address()[1] < 1024)


def _write_paths(url) -> list[str]:
    """A SQLite file outside the StateDirectory needs its folder writable (ProtectSystem=strict)."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return []
    folder = str(Path(url.database).parent)
    return [] if folder.startswith(STATE) else [folder]


def activate(changed, unit) -> None:
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    systemd.service(name="Enable and start mailagent-collector", service="mailagent-collector",
                    running=True, enabled=True)
    systemd.service(name="Restart mailagent-collector (what it runs changed)",
                    service="mailagent-collector", restarted=True, _if=changed)
