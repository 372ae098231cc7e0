"""Storage: migrations match the tables, retention folds history, nothing secret is kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select

from mailagent import signing
from mailagent.collector import ingest, migrate, retention, store
from mailagent.collector.db import metadata, nonces, report_hourly, reports
from mailagent.collector.settings import CollectorSettings

from .conftest import TOKEN

pytestmark = pytest.mark.timeout(120)


def _submit(engine, host, report, at=None):
    body = report.to_wire()
    at = at or datetime.now(timezone.utc)
    headers = {k.lower(): v for k, v in signing.sign_request(host.key, host.name, body,
                                                              now=at.timestamp()).items()}
    settings = CollectorSettings(database_url="sqlite://")
    return ingest.process_batch(engine, settings, [ingest.Submission(headers, body, at)])[0]


def _count(engine, table):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_migrations_create_exactly_the_declared_schema(engine):
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    migrate.upgrade(engine)  # a second start is a no-op


def test_retention_folds_old_reports_into_hours(engine, web1):
    store.register_host(engine, web1.name, web1.public_key)
    now = datetime.now(timezone.utc)
    old = now - timedelta(days=10)
    for minutes, deferred in ((1, 4), (2, 9), (3, 2)):
        report = web1.report(deferred=deferred)
        report.generated_at = old.replace(minute=0) + timedelta(minutes=minutes)
        assert _submit(engine, web1, report, at=now - timedelta(days=10)).status == 200
    assert _submit(engine, web1, web1.report(deferred=1)).status == 200
    settings = CollectorSettings(database_url="sqlite://")
    result = retention.run(engine, settings, now)
    assert result.downsampled == 3
    assert result.nonces_deleted == 3  # the old requests' nonces; the fresh one stays
    assert _count(engine, reports) == 1 and _count(engine, nonces) == 1
    with engine.connect() as conn:
        hour = conn.execute(select(report_hourly)).one()
    assert hour.samples == 3 and hour.queue_deferred_max == 9 and hour.sent == 9
    history = store.get_host(engine, web1.name, history_hours=24 * 30)["history"]
    assert [p["hourly"] for p in history] == [True, False]
    # 100 days on, the last raw report is folded too, and both hours are past 90 days.
    later = retention.run(engine, settings, now + timedelta(days=100))
    assert (later.downsampled, later.hourly_deleted) == (1, 2)
    assert _count(engine, report_hourly) == 0


def test_nothing_secret_is_stored(engine, web1, tmp_path):
    store.register_host(engine, web1.name, web1.public_key)
    assert _submit(engine, web1, web1.report(deferred=2)).status == 200
    private_pem = (tmp_path / f"{web1.name}.key").read_text()
    secret_line = private_pem.splitlines()[1]
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                text = " ".join(str(v) for v in row)
                assert "PRIVATE KEY" not in text and secret_line not in text
                assert TOKEN not in text and "password" not in text.lower()
