"""Several processes on one database: only one evaluates alerts or runs retention at a time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from mailagent.collector import alerting, migrate, retention, store
from mailagent.collector.db import hosts, make_engine
from mailagent.collector.leader import SqliteLeader
from mailagent.collector.settings import AlertSettings, CollectorSettings

pytestmark = pytest.mark.timeout(120)


def test_one_sqlite_leader_per_database_file(tmp_path):
    url = f"sqlite:///{tmp_path}/c.db"
    first, second = SqliteLeader(make_engine(url)), SqliteLeader(make_engine(url))
    assert first.is_leader() and not second.is_leader()
    first.release()
    assert second.is_leader()
    other = SqliteLeader(make_engine(f"sqlite:///{tmp_path}/other.db"))
    assert other.is_leader()


def test_postgresql_passes_skip_while_another_replica_runs_one(postgres):
    engine = make_engine(postgres.create_database("leader"))
    migrate.upgrade(engine)
    store.register_host(engine, "web1", "DwttAal3s9jlKLUZ0h/YZ3m0Qc5menN745Eh3Y6a1K8=")
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(hosts.update().values(last_seen=long_ago, interval_seconds=60))
    now = datetime.now(timezone.utc)
    with engine.connect() as other:  # another replica, mid-pass, holds both locks
        other.execute(text("SELECT pg_advisory_lock(:id)"), {"id": retention._PG_LOCK_ID})
        other.execute(text("SELECT pg_advisory_lock(:id)"), {"id": alerting._PG_LOCK_ID})
        assert alerting.evaluate(engine, AlertSettings(), now) == []
        assert retention.run(engine, CollectorSettings(), now) == retention.RetentionResult()
        other.execute(text("SELECT pg_advisory_unlock_all()"))
        other.commit()
    changes = alerting.evaluate(engine, AlertSettings(), now)
    assert [(c["host"], c["kind"]) for c in changes] == [("web1", "host_silent")]
    engine.dispose()
