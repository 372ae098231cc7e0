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
from urllib.parse import urlsplit

import jinja2
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from mailagent.collector.settings import CollectorSettings, to_toml
from roles.accounts import system_user
from roles.collector.settings import ETC, TLS_CERT, TLS_KEY, TlsSource, settings_for
from roles.collector.tls import certificate_files
from roles.collector.wheels import WheelSet, WheelTarget, wheel_set_for
from roles.platform import Platform, platform_of
from roles.python_env import python_installed, wheels_installed
from roles.secrets import private_file

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
    installed = install(wheel_set(), platform_of(host))
    changed = [installed, *configure(settings, tls)]
    activate(any_changed(*changed), changed[-1])


def wheel_set() -> WheelSet:
    platform = platform_of(host)
    target = WheelTarget(python=platform.python, machine=platform.machine, glibc=platform.glibc)
    return wheel_set_for(target, prepared=host.data.get("collector_wheel_dir"))


def install(wheels: WheelSet, platform: Platform):
    """Service user, Python, the uploaded wheels and the venv built from them offline."""
    python_installed(platform)
    system_user(USER, home=STATE)
    return wheels_installed("the collector", wheels, WHEELS, VENV, platform.release.python)


def configure(settings: CollectorSettings, tls: TlsSource | None) -> list:
    """Settings file, certificate and key, systemd unit; returns their operations (unit last)."""
    files.directory(name=f"Create {ETC}", path=ETC, user="root", group=USER, mode="750")
    # The settings hold the registration token and the database password.
    ops = [private_file(name=f"Upload {SETTINGS_PATH}", path=SETTINGS_PATH,
                        content=to_toml(settings), group=USER, mode="640")]
    if tls is not None:
        cert, key = certificate_files(tls, host.name)
        files.directory(name=f"Create {ETC}/tls", path=f"{ETC}/tls", user="root", group=USER,
                        mode="750")
        ops.append(files.put(name=f"Upload {TLS_CERT}", src=str(cert), dest=TLS_CERT,
                             user="root", group=USER, mode="644"))
        ops.append(private_file(name=f"Upload {TLS_KEY}", path=TLS_KEY,
                                content=Path(key).read_text(), group=USER, mode="640"))
    ops.append(files.put(name=f"Upload {UNIT_PATH}", src=StringIO(render_unit(settings)),
                         dest=UNIT_PATH, user="root", group="root", mode="644"))
    return ops


def render_unit(settings: CollectorSettings) -> str:
    """The systemd unit for these settings (templates/etc/systemd/system/…service.j2)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    backend, host_name, database = _database(settings.database_url)
    return env.get_template(UNIT_PATH.lstrip("/") + ".j2").render(
        service_user=USER, venv=VENV, settings_path=SETTINGS_PATH,
        state_directory=Path(STATE).name, write_paths=_write_paths(backend, database),
        wants_postgresql=backend == "postgresql" and host_name in (
            None, "localhost", "127.0.0.1", "::1"),
        bind_low_port=settings.listen_address()[1] < 1024)


def _database(url: str) -> tuple[str, str | None, str]:
    """(backend, host, database) of a SQLAlchemy URL, read without SQLAlchemy: the deploy runs
    without the collector's server stack ("postgresql+psycopg://u:p@db/x" -> postgresql, db, x)."""
    parts = urlsplit(url)
    return parts.scheme.split("+")[0], parts.hostname, parts.path[1:]


def _write_paths(backend: str, database: str) -> list[str]:
    """A SQLite file outside the StateDirectory needs its folder writable (ProtectSystem=strict)."""
    if backend != "sqlite" or not database:
        return []
    folder = str(Path(database).parent)
    return [] if folder.startswith(STATE) else [folder]


def activate(changed, unit) -> None:
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    systemd.service(name="Enable and start mailagent-collector", service="mailagent-collector",
                    running=True, enabled=True)
    systemd.service(name="Restart mailagent-collector (what it runs changed)",
                    service="mailagent-collector", restarted=True, _if=changed)
