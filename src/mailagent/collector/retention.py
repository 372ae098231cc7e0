"""Retention: fold old reports into hourly rows, then delete what is past its time.

Raw reports older than `raw_days` become one row per host and hour (queue peaks, delivery
sums); hourly rows older than `hourly_days`, resolved alerts older than `resolved_alert_days`
and nonces older than twice the allowed clock skew are deleted. Work is done in chunks, each
its own transaction, so a large backlog never holds a long lock on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Connection, Engine

from mailagent.collector.db import alerts, nonces, report_hourly, reports
from mailagent.collector.leader import pg_session_lock
from mailagent.collector.settings import CollectorSettings

CHUNK = 5000
_PG_LOCK_ID = 0x72657465
_PEAKS = {"queue_active_max": "queue_active", "queue_deferred_max": "queue_deferred",
          "queue_hold_max": "queue_hold", "oldest_age_max": "oldest_age_seconds"}
_SUMS = ("sent", "deferred", "bounced", "expired", "rejected", "sasl_auth_failures")


@dataclass
class RetentionResult:
    """What one maintenance pass did."""

    downsampled: int = 0
    hourly_deleted: int = 0
    alerts_deleted: int = 0
    nonces_deleted: int = 0


def run(engine: Engine, settings: CollectorSettings, now: datetime) -> RetentionResult:
    """One maintenance pass (skipped if another replica is running one)."""
    with pg_session_lock(engine, _PG_LOCK_ID) as mine:
        return _run(engine, settings, now) if mine else RetentionResult()


def _run(engine: Engine, settings: CollectorSettings, now: datetime) -> RetentionResult:
    r = settings.retention
    result = RetentionResult()
    cutoff = now - timedelta(days=r.raw_days)
    while (n := _downsample_chunk(engine, cutoff)):
        result.downsampled += n
    with engine.begin() as conn:
        result.hourly_deleted = conn.execute(delete(report_hourly).where(
            report_hourly.c.hour < now - timedelta(days=r.hourly_days))).rowcount
        result.alerts_deleted = conn.execute(delete(alerts).where(and_(
            alerts.c.state == "resolved",
            alerts.c.resolved_at < now - timedelta(days=r.resolved_alert_days)))).rowcount
        result.nonces_deleted = conn.execute(delete(nonces).where(
            nonces.c.seen_at < now - timedelta(seconds=2 * settings.max_skew_seconds))).rowcount
    return result


def _downsample_chunk(engine: Engine, cutoff: datetime) -> int:
    columns = [reports.c.id, reports.c.host, reports.c.generated_at,
               *(reports.c[c] for c in _PEAKS.values()), *(reports.c[c] for c in _SUMS)]
    with engine.begin() as conn:
        rows = conn.execute(select(*columns).where(reports.c.generated_at < cutoff)
                            .order_by(reports.c.generated_at).limit(CHUNK)).all()
        if not rows:
            return 0
        buckets: dict[tuple[str, datetime], dict] = {}
        for row in rows:
            hour = row.generated_at.replace(minute=0, second=0, microsecond=0)
            _fold(buckets.setdefault((row.host, hour), _empty()), row)
        for (host, hour), bucket in buckets.items():
            _merge_into(conn, host, hour, bucket)
        ids = [row.id for row in rows]
        for start in range(0, len(ids), 500):
            conn.execute(delete(reports).where(reports.c.id.in_(ids[start:start + 500])))
        return len(rows)


def _empty() -> dict:
    return {"samples": 0, **{k: None for k in _PEAKS}, **{k: 0 for k in _SUMS}}


def _fold(bucket: dict, row) -> None:
    bucket["samples"] += 1
    for target, source in _PEAKS.items():
        value = getattr(row, source)
        if value is not None:
            bucket[target] = value if bucket[target] is None else max(bucket[target], value)
    for name in _SUMS:
        bucket[name] += getattr(row, name) or 0


def _merge_into(conn: Connection, host: str, hour: datetime, bucket: dict) -> None:
    """Add `bucket` to the stored hourly row (a later chunk may hit the same hour)."""
    where = and_(report_hourly.c.host == host, report_hourly.c.hour == hour)
    old = conn.execute(select(report_hourly).where(where)).first()
    if old is None:
        conn.execute(report_hourly.insert().values(host=host, hour=hour, **bucket))
        return
    merged = {"samples": old.samples + bucket["samples"]}
    for key in _PEAKS:
        values = [v for v in (getattr(old, key), bucket[key]) if v is not None]
        merged[key] = max(values) if values else None
    for key in _SUMS:
        merged[key] = (getattr(old, key) or 0) + bucket[key]
    conn.execute(report_hourly.update().where(where).values(**merged))
