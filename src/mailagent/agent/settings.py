"""The agent's settings: one typed model, read from a TOML file plus MAILAGENT_ environment overrides.

    /etc/mailagent/agent.toml     written by roles/mailagent from this same model
    MAILAGENT_INTERVAL_SECONDS=30 overrides `interval_seconds`; nested tables use `__`
                                  (MAILAGENT_CHECKS__RELAY_REACH=false)
    MAILAGENT_SETTINGS=FILE       the TOML file to read instead of the default

Only variables whose name is a field of AgentSettings are settings: the rest of the MAILAGENT_
family (MAILAGENT_REGISTRATION_TOKEN, MAILAGENT_LAB_DIR, the collector's MAILAGENT_COLLECTOR_*)
belongs to other commands and is ignored here.

`load_settings` (mailagent.settings_loader, the collector's loader too) raises SettingsError with
one line per problem, naming the field.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mailagent import settings_loader
from mailagent.agent.checks import CHECKS
from mailagent.names import HostName
from mailagent.relay.deployed import DrainTarget
from mailagent.settings_loader import SettingsError  # noqa: F401 (the CLIs catch it from here)

DEFAULT_PATH = Path("/etc/mailagent/agent.toml")
ENV_PREFIX = "MAILAGENT_"
# The drain settings before they were the `drain` table; agent.toml files on deployed hosts and
# MAILAGENT_DRAIN_RELAY-style variables still use them.
FLAT_DRAIN = {"drain_relay": "relay", "drain_tls": "tls", "drain_ca_file": "ca_file"}


class AgentSettings(BaseModel):
    """Everything `mailagent run` needs; every field documents itself."""

    model_config = ConfigDict(extra="forbid")

    host: HostName = Field(
        default_factory=socket.getfqdn,
        description="Name this host reports as; must match the name registered with the collector. "
        "Default: the host's FQDN.", json_schema_extra={"default_shown": "host FQDN"})
    collector_url: str | None = Field(
        default=None, description="Base URL of the collector (https://collector.example:8443); reports "
        "go to {collector_url}/api/v1/reports. None: only local metrics and status, nothing sent.")
    collector_ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the collector's TLS certificate; None: system CAs.")
    key_path: Path = Field(default=Path("/etc/mailagent/agent.key"),
                           description="Ed25519 private key (PEM, 0600) made by `mailagent keygen`.")
    interval_seconds: float = Field(default=60, ge=1, le=3600,
                                    description="Seconds between report cycles.")
    http_timeout_seconds: float = Field(default=10, gt=0, le=120,
                                        description="Timeout of one POST to the collector.")
    state_dir: Path = Field(default=Path("/var/lib/mailagent"),
                            description="Agent state: log read position, last report (systemd "
                            "StateDirectory).")
    spool_dir: Path = Field(default=Path("/var/lib/mailagent/spool"),
                            description="Reports not yet accepted by the collector, one file each.")
    spool_max_reports: int = Field(default=1440, ge=1, le=100_000,
                                   description="Spool bound; beyond it the oldest report is dropped "
                                   "and counted. 1440 = one day at 60 s.")
    backoff_max_seconds: float = Field(default=600, ge=1,
                                       description="Upper bound of the retry backoff while the "
                                       "collector is unreachable (doubles from interval_seconds).")
    postfix_spool: Path = Field(default=Path("/var/spool/postfix"),
                                description="Postfix queue_directory (`postconf -h queue_directory`).")
    postfix_config_dir: Path | None = Field(
        default=None, description="Postfix config_directory for postqueue/postconf -c; None: default.")
    queue_detail_interval_seconds: float = Field(
        default=300, ge=0, description="How often `postqueue -j` runs (0: every cycle). Between runs "
        "the last detail is carried forward with its oldest age advanced.")
    queue_detail_deadline_seconds: float = Field(
        default=20, gt=0, description="postqueue -j is stopped after this; the result is flagged partial.")
    top_destinations: int = Field(default=10, ge=0, le=20,
                                  description="How many recipient domains to report.")
    log_source: str = Field(default="journal",
                            description="`journal` (journalctl, mail facility) or the absolute path "
                            "of a mail log file (e.g. /var/log/mail.log).")
    log_max_lines_per_cycle: int = Field(default=200_000, ge=100,
                                         description="Bound on log lines read per cycle; the rest "
                                         "is read next cycle (the position is kept).")
    relay_settings_path: Path = Field(
        default=Path("/etc/mailagent/relay.json"),
        description="relay.json written by the relay deploy: the deployed relayhost, and what "
        "relay_reach connects to.")
    sasl_map: Path = Field(default=Path("/etc/postfix/sasl_passwd"),
                           description="Where relay_reach reads the smarthost credentials.")
    relay_check_interval_seconds: float = Field(default=900, ge=0,
                                                description="How often relay_reach runs.")
    checks: dict[str, bool] = Field(default_factory=dict,
                                    description="Turn checks on/off by name, overriding their defaults "
                                    "(queue_counts, queue_detail, log_stats, postfix_health, relay_reach).")
    metrics_textfile: Path | None = Field(
        default=None, description="Prometheus textfile to write each cycle (node_exporter textfile "
        "folder, e.g. /var/lib/prometheus/node-exporter/mailagent.prom); None: not written.")
    metrics_listen: str | None = Field(
        default=None, description="Serve /metrics on this loopback address:port "
        "(127.0.0.1:9391); None: no listener.")
    role: Literal["relay", "hub"] = Field(
        default="relay", description="What this host is, carried in every report: `relay` (a "
        "fleet host's null client) or `hub` (the central relay the fleet hands mail to); the "
        "collector shows hubs apart.")
    drain: DrainTarget = Field(
        default_factory=DrainTarget, description="Where `mailagent drain` hands the rest of the "
        "queue; the relay deploy fills it from the relay profile's drain_relay.")

    @model_validator(mode="wrap")
    @classmethod
    def _flat_drain(cls, data, handler):
        """Read the flat drain_relay/drain_tls/drain_ca_file of older agent.toml files and host
        data as `drain` (the table wins where both are given), naming them as written in errors."""
        flat = [key for key in FLAT_DRAIN if isinstance(data, dict) and key in data]
        if not flat:
            return handler(data)
        data = dict(data)
        table = data.get("drain")
        table = table.model_dump(exclude_unset=True) if isinstance(table, DrainTarget) else table
        data["drain"] = {**{FLAT_DRAIN[key]: data.pop(key) for key in flat}, **(table or {})}
        try:
            return handler(data)
        except ValidationError as exc:
            raise _flat_names(exc, flat) from None

    @field_validator("log_source")
    @classmethod
    def _log_source(cls, value: str) -> str:
        if value != "journal" and not value.startswith("/"):
            raise ValueError("must be 'journal' or an absolute path")
        return value

    @field_validator("collector_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// on loopback)")
        return value.rstrip("/") if value else value

    @field_validator("metrics_listen")
    @classmethod
    def _loopback(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, _, port = value.rpartition(":")
        if not port.isdigit() or not ipaddress.ip_address(host.strip("[]")).is_loopback:
            raise ValueError("must be a loopback address:port, e.g. 127.0.0.1:9391")
        return value

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(CHECKS))
        if unknown:
            raise ValueError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
        return value

    def enabled_checks(self) -> list[str]:
        """Names of the checks that run, in registry order."""
        return [name for name, spec in CHECKS.items() if self.checks.get(name, spec.default_enabled)]


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> AgentSettings:
    """Read the TOML file (missing file: defaults), then the MAILAGENT_ variables over it."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get(ENV_PREFIX + "SETTINGS", DEFAULT_PATH))
    return settings_loader.load(AgentSettings, path, _nested_drain(environ), prefix=ENV_PREFIX)


def _nested_drain(environ: Mapping[str, str]) -> dict[str, str]:
    """MAILAGENT_DRAIN_RELAY (the flat form) as MAILAGENT_DRAIN__RELAY, the `drain` table's."""
    renamed = {(ENV_PREFIX + flat).upper(): f"{ENV_PREFIX}DRAIN__{key.upper()}"
               for flat, key in FLAT_DRAIN.items()}
    return {renamed.get(name.upper(), name): value for name, value in environ.items()}


def _flat_names(exc: ValidationError, flat: list[str]) -> ValidationError:
    """`exc` with drain.relay named drain_relay (and so on) where the flat key was given."""
    names = {("drain", FLAT_DRAIN[key]): key for key in flat}
    errors = [{**err, "loc": (names[err["loc"][:2]], *err["loc"][2:])}
              if err["loc"][:2] in names else err for err in exc.errors(include_url=False)]
    return ValidationError.from_exception_data(exc.title, errors)


def to_toml(settings: AgentSettings) -> str:
    """Render settings as TOML (what the role uploads); only values that differ from defaults."""
    data = settings.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("host", settings.host)
    lines, tables = [], []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append(f"\n[{key}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in value.items()
                                                    if v is not None))
        else:
            lines.append(f"{key} = {_toml_value(value)}\n")
    return "# Written by roles/mailagent; fields: mailagent.agent.settings.AgentSettings\n" + \
        "".join(lines) + "".join(tables)


def _toml_value(value) -> str:
    # JSON string/number/bool literals are valid TOML for the scalar types this model uses.
    return json.dumps(value)
