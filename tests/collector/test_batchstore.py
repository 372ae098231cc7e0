"""The driver-level storing transaction (batchstore): what it writes reads back through
SQLAlchemy unchanged, concurrent batches for one host lose no update, and a database that
stays locked becomes a 503 for the batch."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import select, text

from mailagent import signing
from mailagent.collector import ingest, migrate, store
from mailagent.collector.db import hosts, make_engine, nonces, reports
from mailagent.collector.keycache import KeyCache
from mailagent.collector.settings import CollectorSettings
from mailagent.collector.writer import BatchWriter

pytestmark = pytest.mark.timeout(180)
SETTINGS = CollectorSettings(database_url="sqlite://")


def _submission(host, report, at: datetime) -> ingest.Submission:
    body = report.to_wire()
    headers = {k.lower(): v for k, v in
               signing.sign_request(host.key, host.name, body, now=at.timestamp()).items()}
    return ingest.Submission(headers, body, at)


def test_stored_values_read_back_through_sqlalchemy(engine, web1):
    store.register_host(engine, web1.name, web1.public_key)
    report = web1.report(deferred=7, oldest=90.5)
    at = datetime.now(timezone.utc).replace(microsecond=123456)
    [outcome] = ingest.process_batch(engine, SETTINGS, [_submission(web1, report, at)])
    assert outcome.outcome == "accepted"
    with engine.connect() as conn:
        row = conn.execute(select(reports)).one()
        host = conn.execute(select(hosts)).one()
        nonce = conn.execute(select(nonces)).one()
    assert row.id == str(report.report_id) and row.host == web1.name
    assert row.generated_at == report.generated_at.astimezone(timezone.utc)
    assert row.received_at == at and nonce.seen_at == at and host.last_seen == at
    assert (row.queue_deferred, row.oldest_age_seconds, row.sent) == (7, 90.5, 3)
    assert row.relay_reachable is None and host.drained_at is None
    assert host.interval_seconds == 60 and host.role == "relay"
    assert store.list_hosts(engine)[0]["latest"]["report_id"] == str(report.report_id)


def test_concurrent_batches_for_one_host_lose_no_update(engine, web1):
    """Writers race on one host with reports in random order: its latest figures must end at
    the newest report stored, whichever batch committed last (a read outside the writing
    transaction would let an older report overwrite a newer one)."""
    store.register_host(engine, web1.name, web1.public_key)
    base = datetime.now(timezone.utc) - timedelta(minutes=30)
    subs = []
    for n in range(200):
        report = web1.report(deferred=n)
        report.generated_at = base + timedelta(seconds=n)
        subs.append(_submission(web1, report, datetime.now(timezone.utc)))
    random.Random(5).shuffle(subs)
    keys = KeyCache()  # shared, as the writer threads of one process share it
    errors: list[BaseException] = []

    def write(part: list[ingest.Submission]) -> None:
        try:
            for i in range(0, len(part), 2):
                outcomes = ingest.process_batch(engine, SETTINGS, part[i:i + 2], keys)
                assert {o.outcome for o in outcomes} == {"accepted"}
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(subs[k::4],)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    latest = store.list_hosts(engine)[0]["latest"]
    assert latest["queue"]["counts"]["deferred"] == 199
    with engine.connect() as conn:
        assert len(conn.execute(select(reports.c.id)).all()) == 200


def test_a_database_that_stays_locked_answers_the_batch_503(tmp_path, web1):
    url = f"sqlite:///{tmp_path}/c.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    store.register_host(engine, web1.name, web1.public_key)
    holder = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program writing, outside the collector
    try:
        writer = BatchWriter(lambda subs: ingest.process_batch(engine, SETTINGS, subs), 8)
        sub = _submission(web1, web1.report(), datetime.now(timezone.utc))

        async def main():
            writer.start()
            outcome = await writer.submit(sub)
            await writer.stop()
            return outcome

        outcome = asyncio.run(main())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (outcome.status, outcome.outcome) == (503, "unavailable")
    with engine.connect() as conn:
        assert conn.execute(select(reports.c.id)).all() == []  # and it can be resent
    engine.dispose()


def test_ingest_recovers_when_postgresql_drops_its_connections(make_server, postgres, web1):
    """Ingest does not test pooled connections before each batch; when the server drops them
    (a restart, a failover) the batch that finds out is answered 503 (the agent resends it)
    and the next one gets a fresh connection."""
    url = postgres.create_database("t_drop")
    server = make_server(url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert web1.register(client).status_code == 200
        assert web1.post(client).status_code == 200
        admin = make_engine(url)
        try:
            with admin.connect() as conn:
                dropped = conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = 't_drop' AND pid <> pg_backend_pid()")).scalar()
            assert dropped >= 1
            statuses = [web1.post(client).status_code for _ in range(3)]
            assert statuses[0] in (200, 503) and statuses[1:] == [200, 200]
            with admin.connect() as conn:
                stored = len(conn.execute(select(reports.c.id)).all())
            assert stored == 1 + statuses.count(200)
        finally:
            admin.dispose()
