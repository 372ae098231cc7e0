"""The report: the wire schema the agent sends and the collector stores (schema version 1).

One model shared by both sides. Every section except the header and `checks` is optional: a
section is None when the check that fills it failed or did not run this cycle, and that failure
is itself data in `checks`. Lists, mappings and strings are bounded so the collector can refuse
an oversized report (422) before storing it.

    Report
    ├── checks: list[CheckResult]
    ├── queue: QueueSection | None
    ├── delivery: DeliverySection | None
    ├── postfix: PostfixSection | None
    ├── relay: RelaySection | None          (slow cadence: not every cycle)
    └── spool: SpoolSection | None

`role` says whether the host is a fleet relay or the hub; `lifecycle` is "drained" only in the
notice `mailagent drain` sends (signed like every report) once the host's queue is empty.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from mailagent.names import HostName
from mailagent.queues import QUEUE_NAMES  # noqa: F401  (re-exported: the report lists these queues)

SCHEMA_VERSION = 1
MAX_CHECKS = 32
MAX_TOP_DESTINATIONS = 20
MAX_DSN_CODES = 64
MAX_ERROR_CHARS = 2000
# A full report is a few KB; anything much larger is refused unread by the collector.
MAX_REPORT_BYTES = 64 * 1024

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]
ShortText = Annotated[str, StringConstraints(max_length=512)]
ErrorText = Annotated[str, StringConstraints(max_length=MAX_ERROR_CHARS)]
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
DsnCode = Annotated[str, StringConstraints(pattern=r"^[245]\.\d{1,3}\.\d{1,3}$")]


class ReasonClass(str, Enum):
    """Why a deferred recipient waits, classed from its delay_reason text."""

    auth_failed = "auth_failed"
    tls_failure = "tls_failure"
    connection_refused = "connection_refused"
    timeout = "timeout"
    throttled = "throttled"
    rejected = "rejected"
    dns = "dns"
    other = "other"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckResult(_Model):
    """The outcome of one check in this cycle; a failed check is reported, never hidden."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        description="Registry name of the check, e.g. queue_counts, log_stats.")
    success: bool = Field(description="True when the check produced its figures.")
    duration_seconds: Seconds = Field(description="Wall time the check took, in seconds.")
    error: ErrorText | None = Field(
        default=None, description="Why the check failed (one line); None on success.")


class QueueCounts(_Model):
    """Messages per Postfix queue, counted from the spool directories."""

    maildrop: Count = Field(default=0, description="Messages in maildrop (posted, not yet picked up).")
    incoming: Count = Field(default=0, description="Messages in incoming (being cleaned up/queued).")
    active: Count = Field(default=0, description="Messages in active (being delivered now).")
    deferred: Count = Field(default=0, description="Messages in deferred (waiting for a retry).")
    hold: Count = Field(default=0, description="Messages on hold (postsuper -h), not delivered.")


class Destination(_Model):
    """One recipient domain and how many queued recipients go to it."""

    destination: Name = Field(description="Recipient domain (lower case).")
    count: Count = Field(description="Queued recipients for this domain.")


def _bounded_dict(limit: int):
    def check(value: dict) -> dict:
        if len(value) > limit:
            raise ValueError(f"at most {limit} entries allowed, got {len(value)}")
        return value
    return AfterValidator(check)


class QueueSection(_Model):
    """Queue figures: counts from the spool walk, detail from `postqueue -j` when it ran."""

    counts: QueueCounts = Field(description="Messages per queue (from the spool directories).")
    oldest_age_seconds: Seconds | None = Field(
        default=None, description="Age of the oldest queued message since its arrival_time "
        "(not file mtime, which Postfix sets to the next retry); None when unknown or empty.")
    bytes: Count | None = Field(
        default=None, description="Total message_size of queued messages, in bytes; None if unknown.")
    deferred_by_reason: Annotated[dict[ReasonClass, Count], _bounded_dict(len(ReasonClass))] = Field(
        default_factory=dict, description="Deferred recipients per reason class.")
    deferred_by_dsn: Annotated[dict[DsnCode, Count], _bounded_dict(MAX_DSN_CODES)] = Field(
        default_factory=dict, description="Deferred recipients per DSN code (e.g. 4.4.1) "
        "found in their delay reason; reasons without a code are not counted here.")
    top_destinations: list[Destination] = Field(
        default_factory=list, max_length=MAX_TOP_DESTINATIONS,
        description="Recipient domains with the most queued recipients, largest first.")
    partial: bool = Field(
        default=False, description="True when the detail pass hit its deadline or could not "
        "parse every line: detail figures then cover only part of the queue.")


class DeliverySection(_Model):
    """Delivery figures from the mail log since the previous report (deltas, not totals)."""

    sent: Count = Field(default=0, description="Recipients delivered (status=sent).")
    deferred: Count = Field(default=0, description="Delivery attempts deferred (status=deferred).")
    bounced: Count = Field(default=0, description="Recipients bounced (status=bounced).")
    expired: Count = Field(default=0, description="Messages expired after maximal_queue_lifetime.")
    rejected: Count = Field(default=0, description="Mail refused on submission (NOQUEUE: reject).")
    sasl_auth_failures: Count = Field(
        default=0, description="SASL authentication failures against the smarthost.")
    tls_deliveries: Count = Field(
        default=0, description="Recipients sent by the SMTP/LMTP client over a connection that "
        "logged 'TLS connection established' (Trusted, Verified, Untrusted or Anonymous).")
    plaintext_deliveries: Count = Field(
        default=0, description="Recipients sent by the SMTP/LMTP client with no TLS logged for "
        "that connection (local deliveries count in neither).")


class PostfixSection(_Model):
    """Whether Postfix runs and is configured as deployed."""

    master_running: bool = Field(description="The master process pid file names a live process.")
    check_ok: bool = Field(description="`postfix check` exited 0 with no warnings.")
    relay_expected: ShortText | None = Field(
        default=None, description="relayhost the deploy wrote (from the agent settings).")
    relay_actual: ShortText | None = Field(
        default=None, description="relayhost Postfix uses now (`postconf -h relayhost`).")


class RelaySection(_Model):
    """Last relay reachability check (connect, EHLO, TLS, AUTH); run at a slow cadence."""

    reachable: bool = Field(description="Every step up to AUTH succeeded.")
    code: int | None = Field(default=None, ge=0, le=999,
                             description="Last SMTP reply code seen, None if no reply.")
    hint: ShortText | None = Field(default=None, description="What the failure usually means.")
    checked_at: AwareDatetime = Field(description="When the check ran (timezone-aware).")


class SpoolSection(_Model):
    """State of the agent's own on-disk report spool."""

    pending: Count = Field(description="Reports waiting in the spool to be sent.")
    dropped_total: Count = Field(
        description="Reports dropped since install because the spool was full (oldest first).")


class Report(_Model):
    """One agent report for one cycle: header, per-check outcome, and the figures."""

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Wire schema version.")
    report_id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        description="Unique id; the collector stores a report once per id (idempotent resends).")
    host: HostName = Field(
        description="Host name the report is about; must match the signing identity.")
    agent_version: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="Version of the mailagent package that made the report.")
    generated_at: AwareDatetime = Field(description="When the cycle ran (timezone-aware).")
    interval_seconds: Annotated[float, Field(gt=0, le=86400)] = Field(
        description="The agent's reporting interval, so the collector can tell a silent host.")
    role: Literal["relay", "hub"] = Field(
        default="relay", description="What the host is: a fleet `relay` (null client) or the "
        "`hub` the fleet relays through; the collector shows hubs apart. Default relay, so "
        "reports from agents that predate roles still validate.")
    lifecycle: Literal["running", "drained"] = Field(
        default="running", description="`drained`: sent once by `mailagent drain` when the "
        "host's queue is empty and it takes no new mail; the collector then expects the host "
        "to go quiet (no host_silent alert). Any later `running` report marks it back in service.")
    checks: list[CheckResult] = Field(default_factory=list, max_length=MAX_CHECKS,
                                      description="Outcome of every check that ran this cycle.")
    queue: QueueSection | None = Field(default=None, description="Queue figures, None on failure.")
    delivery: DeliverySection | None = Field(default=None,
                                             description="Log figures, None on failure.")
    postfix: PostfixSection | None = Field(default=None, description="Postfix health.")
    relay: RelaySection | None = Field(default=None, description="Relay check, when it ran.")
    spool: SpoolSection | None = Field(default=None, description="The agent's report spool.")

    def to_wire(self) -> bytes:
        """The JSON body sent to the collector (UTF-8)."""
        return self.model_dump_json().encode()

    @classmethod
    def from_wire(cls, body: bytes | str) -> "Report":
        """Parse and validate a report body; raises pydantic.ValidationError."""
        return cls.model_validate_json(body)


def example_report(host: str = "web1.example.org", when: datetime | None = None) -> Report:
    """A small valid report (for docs and the collector's tests)."""
    return Report(host=host, agent_version="0.1.0", interval_seconds=60,
                  generated_at=when or datetime.now(timezone.utc),
                  checks=[CheckResult(name="queue_counts", success=True, duration_seconds=0.01)],
                  queue=QueueSection(counts=QueueCounts(deferred=2), oldest_age_seconds=120.0,
                                     deferred_by_reason={ReasonClass.connection_refused: 2}),
                  spool=SpoolSection(pending=0, dropped_total=0))
