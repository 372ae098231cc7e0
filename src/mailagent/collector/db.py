"""Tables and the database engine (SQLite with WAL by default, PostgreSQL by URL).

The schema is created and upgraded by the Alembic migrations in `migrations/` (run at
startup); these table objects are what the code queries and must match the latest migration
(a test compares them). Times are stored as naive UTC and handed back timezone-aware.
Nothing secret is stored: reports carry none, and hosts hold only public keys.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (Boolean, Column, DateTime, Float, Index, Integer, MetaData, String, Table,
                        Text, create_engine, event)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """An aware datetime stored as naive UTC, so SQLite and PostgreSQL compare alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return naive_utc(value)

    def process_result_value(self, value, dialect):
        return aware_utc(value)


def naive_utc(value: datetime | None) -> datetime | None:
    """An aware time as the naive UTC the tables store (naive times are taken as UTC)."""
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def aware_utc(value: datetime | None) -> datetime | None:
    """A stored naive UTC time as an aware one."""
    return value.replace(tzinfo=timezone.utc) if value is not None else None


metadata = MetaData()

hosts = Table(
    "hosts", metadata,
    Column("name", String(253), primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime),
    Column("role", String(16), nullable=False, default="relay", server_default="relay"),
    # Set by a signed "drained" report (or the operator's token call); a later normal report
    # from the host clears it. While set, nothing about the host alerts.
    Column("drained_at", UTCDateTime),
    Column("interval_seconds", Float),
    # Latest figures (the summary the fleet table shows) and, per alert kind, since when its
    # condition has held: kept on the host row so listing the fleet needs no scan of reports.
    Column("latest", Text),
    Column("conditions", Text),
)

reports = Table(
    "reports", metadata,
    Column("id", String(36), primary_key=True),
    Column("host", String(253), nullable=False),
    Column("generated_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("queue_maildrop", Integer), Column("queue_incoming", Integer),
    Column("queue_active", Integer), Column("queue_deferred", Integer),
    Column("queue_hold", Integer),
    Column("oldest_age_seconds", Float), Column("queue_bytes", Integer),
    Column("sent", Integer), Column("deferred", Integer), Column("bounced", Integer),
    Column("expired", Integer), Column("rejected", Integer),
    Column("sasl_auth_failures", Integer),
    Column("relay_reachable", Boolean),
    Column("body", Text, nullable=False),
    Index("ix_reports_host_generated", "host", "generated_at"),
    Index("ix_reports_generated", "generated_at"),
)

report_hourly = Table(
    "report_hourly", metadata,
    Column("host", String(253), primary_key=True),
    Column("hour", UTCDateTime, primary_key=True),
    Column("samples", Integer, nullable=False),
    Column("queue_active_max", Integer), Column("queue_deferred_max", Integer),
    Column("queue_hold_max", Integer), Column("oldest_age_max", Float),
    Column("sent", Integer), Column("deferred", Integer), Column("bounced", Integer),
    Column("expired", Integer), Column("rejected", Integer),
    Column("sasl_auth_failures", Integer),
    Index("ix_report_hourly_hour", "hour"),
)

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(253), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("detail", Text),
    Index("ix_alerts_state", "state"),
    Index("ix_alerts_host", "host"),
)

nonces = Table(
    "nonces", metadata,
    Column("host", String(253), primary_key=True),
    Column("nonce", String(32), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False),
    Index("ix_nonces_seen_at", "seen_at"),
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers (dashboard) run beside the writer; busy_timeout waits out locks.
    synchronous=FULL syncs the WAL at every commit: an agent deletes its spooled report on
    200, so a committed batch must survive a power loss (NORMAL keeps the database intact but
    may lose the last commits). Batched ingest makes that one fsync per batch, not per report."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, ping: bool = True) -> Engine:
    """An engine for `url`; SQLite gets WAL and a busy timeout on every connection. `ping`
    tests each pooled PostgreSQL connection as it is checked out (one round trip)."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=ping, pool_size=5, max_overflow=5)


def _ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)
