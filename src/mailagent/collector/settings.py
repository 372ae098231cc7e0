"""The collector's settings: one typed model, read from TOML plus MAILAGENT_COLLECTOR_ variables.

Precedence (highest first): command-line flags, environment, TOML file, defaults. The file is
`--config FILE` or, failing that, ``MAILAGENT_COLLECTOR_CONFIG``. Nested fields are reached
from the environment with a double underscore, e.g.
``MAILAGENT_COLLECTOR_ALERTS__DEFERRED_THRESHOLD=500``; lists are given as JSON. Variables that
name no field are not settings (mailagent.settings_loader, the agent's loader too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from mailagent import settings_loader
from mailagent.settings_loader import SettingsError  # noqa: F401 (the CLIs catch it from here)

ENV_PREFIX = "MAILAGENT_COLLECTOR_"
# Not a field: the TOML file to read when no --config is given (handy in systemd units).
ENV_CONFIG = "MAILAGENT_COLLECTOR_CONFIG"
DEFAULT_DATABASE = "sqlite:////var/lib/mailagent-collector/collector.db"
MIN_TOKEN_LENGTH = 24
SECRET_FIELDS = ("registration_token", "admin_token", "read_token")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AlertSettings(_Model):
    """Thresholds of the built-in alerts (see `rules`); any kind can be listed in `disabled`."""

    deferred_threshold: int = Field(
        default=100, ge=0, description="Fire `queue_deferred` when a host's deferred queue holds "
        "more messages than this ...")
    deferred_for_seconds: float = Field(
        default=600, ge=0, description="... continuously for this long (a short burst while the "
        "smarthost restarts is normal).")
    oldest_age_seconds: float = Field(
        default=3600, gt=0, description="Fire `oldest_message` when the oldest queued message is "
        "older than this (arrival time, not last retry).")
    silent_intervals: float = Field(
        default=3, gt=0, description="Fire `host_silent` when no report came for this many of "
        "the host's own reporting intervals (never for a drained host).")
    sasl_failures: int = Field(
        default=1, ge=1, description="Fire `sasl_auth_failures` when a report counts at least "
        "this many SASL authentication failures at the smarthost.")
    bounce_rate: float = Field(
        default=0.05, gt=0, le=1, description="Fire `bounce_rate` when bounced / (sent + "
        "bounced) in one report exceeds this fraction ...")
    bounce_min_messages: int = Field(
        default=20, ge=1, description="... and the report covers at least this many messages "
        "(one bounce out of two is not a trend).")
    disabled: list[str] = Field(
        default_factory=list, description="Alert kinds never raised, e.g. [\"bounce_rate\"].")


class RetentionSettings(_Model):
    """How long history is kept, so the database does not grow forever."""

    raw_days: float = Field(default=7, gt=0, description="Keep every report this many days, "
                            "then fold it into hourly rows.")
    hourly_days: float = Field(default=90, gt=0, description="Keep hourly rows this many days.")
    resolved_alert_days: float = Field(default=30, gt=0,
                                       description="Keep resolved alerts this many days.")


class NotifySettings(_Model):
    """Where alert changes (firing, resolved) are delivered."""

    webhook_url: str | None = Field(
        default=None, description="POST each alert change (firing, resolved) here as JSON; "
        "unset to disable.")
    webhook_timeout_seconds: float = Field(
        default=5, gt=0, description="Seconds to wait for the webhook's answer, per attempt.")
    webhook_attempts: int = Field(default=5, ge=1, description="Attempts before giving up.")
    webhook_backoff_seconds: float = Field(
        default=1, ge=0, description="First retry delay; doubled after each failed attempt.")
    mail_to: list[str] = Field(
        default_factory=list, description="Also mail alert changes to these addresses through "
        "the local relay (127.0.0.1:25); empty to disable.")
    mail_from: str = Field(default="mailagent-collector@localhost",
                           description="Envelope and header sender of alert mails.")
    smtp_host: str = Field(default="127.0.0.1", description="The local relay (null client).")
    smtp_port: int = Field(default=25, gt=0, lt=65536, description="The local relay's port.")
    alertmanager_url: str | None = Field(
        default=None, description="Also send alerts to this Prometheus Alertmanager "
        "(http(s)://host:9093; its v2 API, POST /api/v2/alerts): firing ones with startsAt, "
        "re-posted every `alertmanager_repeat_seconds`, resolved ones with endsAt. Unset to "
        "disable. No credentials in the URL: see the two files below.")
    alertmanager_username: str | None = Field(
        default=None, description="HTTP basic auth user name for Alertmanager (with "
        "`alertmanager_password_file`).")
    alertmanager_password_file: Path | None = Field(
        default=None, description="File (mode 0600, read at each post) holding the basic auth "
        "password; a file that group or others may read is refused.")
    alertmanager_bearer_token_file: Path | None = Field(
        default=None, description="File (mode 0600, read at each post) holding a bearer token "
        "for Alertmanager, instead of basic auth (e.g. behind an authenticating proxy).")
    alertmanager_ca_file: Path | None = Field(
        default=None, description="PEM CA that signed Alertmanager's certificate; unset uses "
        "the system's CAs.")
    alertmanager_repeat_seconds: float = Field(
        default=60, gt=0, description="Re-post the firing alerts this often (at the next "
        "evaluation pass): Alertmanager resolves an alert it has not heard of for its "
        "`resolve_timeout` (5 min by default). Also the longest delay between retries.")
    external_url: str | None = Field(
        default=None, description="This collector's address as ops open it "
        "(https://collector.example.com); alerts sent to Alertmanager link to the host's "
        "dashboard page there (generatorURL). Unset: no link.")

    @model_validator(mode="after")
    def _alertmanager_auth(self) -> "NotifySettings":
        if (self.alertmanager_username is None) != (self.alertmanager_password_file is None):
            raise ValueError("alertmanager_username and alertmanager_password_file must be "
                             "given together")
        if self.alertmanager_password_file and self.alertmanager_bearer_token_file:
            raise ValueError("give alertmanager_password_file or alertmanager_bearer_token_file, "
                             "not both")
        if self.alertmanager_url and not self.alertmanager_url.startswith(("http://", "https://")):
            raise ValueError("alertmanager_url: expected http://HOST:PORT or https://HOST:PORT")
        if self.alertmanager_url and "@" in self.alertmanager_url.partition("//")[2].split("/")[0]:
            raise ValueError("alertmanager_url: no credentials in the URL (they would be "
                             "logged); use alertmanager_username and alertmanager_password_file")
        return self


class CollectorSettings(_Model):
    """Everything `mailagent collector serve` needs."""

    listen: str = Field(default="127.0.0.1:8480", description="HOST:PORT to serve on.")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes sharing the "
                         "port; each verifies signatures on its own core. Alert evaluation and "
                         "retention run in one of them at a time.")
    database_url: str = Field(
        default=DEFAULT_DATABASE, description="SQLAlchemy URL: sqlite:////path.db (WAL, the "
        "default) or postgresql+psycopg://user@host/db for fleets that outgrow one box.")
    registration_token: SecretStr | None = Field(
        default=None, description="Bearer token the deploy uses to register host keys: it can "
        "only add a host that has no key yet (the same key again is a no-op); registration is "
        f"refused while unset. At least {MIN_TOKEN_LENGTH} characters.")
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for operator actions: replacing a host's key "
        "(`replace: true`), deleting a host, marking any host drained; it also reads. Unset: "
        "keys rotate only by a request signed with the old key, hosts drain only by their own "
        f"signed notice, and nothing can be deleted. At least {MIN_TOKEN_LENGTH} characters, "
        "different from the other tokens.")
    read_token: SecretStr | None = Field(
        default=None, description="Credential for the read side (dashboard, /api/v1/hosts, "
        "/api/v1/alerts, /metrics, /openapi.json): a bearer token for the API and Prometheus, "
        "or the password of HTTP basic auth (any user name) for a browser. Unset: only the "
        f"admin token reads. At least {MIN_TOKEN_LENGTH} characters.")
    public_read: bool = Field(
        default=False, description="Serve the read side to anyone, without a credential (only "
        "where the listener is private, e.g. the lab on loopback). /healthz is always public "
        "and tells only whether the database answers.")
    auth_failures_per_minute: int = Field(
        default=10, ge=1, description="Wrong tokens accepted per client address and minute "
        "(a token bucket per server process, refilled evenly); past it every credential from "
        "that address gets 429 with Retry-After until the bucket refills. Signed reports are "
        "not counted.")
    tls_cert: Path | None = Field(default=None, description="PEM certificate (chain) for HTTPS; "
                                  "unset serves plain HTTP (for TLS in a proxy in front).")
    tls_key: Path | None = Field(default=None, description="PEM private key of `tls_cert`.")
    max_report_bytes: int = Field(default=64 * 1024, gt=0, description="Larger bodies get 413.")
    max_skew_seconds: float = Field(default=300, gt=0, description="Allowed clock difference "
                                    "between agent and collector; nonces are kept this long.")
    evaluate_interval_seconds: float = Field(default=15, gt=0,
                                             description="How often alerts are evaluated.")
    maintenance_interval_seconds: float = Field(
        default=3600, gt=0, description="How often retention, downsampling and nonce pruning run.")
    batch_max: int = Field(default=256, ge=1, description="Most reports written in one "
                           "transaction (writes are grouped to keep up with large fleets).")
    writer_threads: int = Field(
        default=1, ge=1, le=32, description="Batches each server process stores at once. One "
        "is fastest on both databases when they are near: larger batches, less CPU per report "
        "(bench/collector_load.py: PostgreSQL 1,978 reports/s with one, 1,286-1,313 with two). "
        "More can help when the database is far away and each batch waits on the network.")
    max_pending_reports: int = Field(
        default=4096, ge=1, description="Reports waiting to be stored beyond which new ones get "
        "503 at once (agents spool and retry), so accepted ones stay fast under overload.")
    dashboard_refresh_seconds: int = Field(default=30, ge=5, description="Page auto-refresh.")
    history_hours: float = Field(default=24, gt=0, description="History shown on a host page.")
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="Alert thresholds.")
    retention: RetentionSettings = Field(default_factory=RetentionSettings,
                                         description="History retention.")
    notify: NotifySettings = Field(default_factory=NotifySettings,
                                   description="Alert delivery.")

    @field_validator("listen")
    @classmethod
    def _listen_form(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT with a port from 1 to 65535")
        return value

    @field_validator(*SECRET_FIELDS)
    @classmethod
    def _token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters (make one with: "
                             "python3 -c 'import secrets; print(secrets.token_urlsafe(24))')")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> "CollectorSettings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

    @model_validator(mode="after")
    def _distinct_tokens(self) -> "CollectorSettings":
        given = [v.get_secret_value() for v in self.tokens().values()]
        if len(set(given)) != len(given):
            raise ValueError("registration_token, admin_token and read_token must differ "
                             "(one token would have the rights of all)")
        return self

    def tokens(self) -> dict[str, SecretStr]:
        """The configured tokens by field name."""
        return {name: getattr(self, name) for name in SECRET_FIELDS
                if getattr(self, name) is not None}

    def history_hours_max(self) -> float:
        """The longest history a host page can ask for: what retention keeps at all."""
        return max(self.retention.raw_days, self.retention.hourly_days) * 24

    def revealed(self) -> dict[str, Any]:
        """The settings as plain JSON data, secrets included (for the service's own file and
        its worker processes, never for printing)."""
        data = self.model_dump(mode="json", exclude_none=True)
        data.update({name: value.get_secret_value() for name, value in self.tokens().items()})
        return data

    def listen_address(self) -> tuple[str, int]:
        """`listen` split into host and port."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)


def load_settings(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> CollectorSettings:
    """Build the settings from a TOML file, the environment and explicit overrides (flags)."""
    environ = os.environ if environ is None else environ
    path = path if path is not None else environ.get(ENV_CONFIG)
    return settings_loader.load(CollectorSettings, Path(path) if path else None, environ,
                                prefix=ENV_PREFIX, missing_ok=False, **overrides)


def to_toml(settings: CollectorSettings) -> str:
    """The settings as a TOML file `load_settings` reads back to an equal model (secrets
    included: the file is the service's own, mode 0640)."""
    data = settings.revealed()
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items()
                                     if v is not None)]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
