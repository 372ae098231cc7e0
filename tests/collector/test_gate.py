"""What is refused before a report is queued (collector.gate), reports dated in the future,
content types, and a durable 200 on SQLite."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from mailagent import signing
from mailagent.collector import ingest
from mailagent.collector.db import hosts, reports
from mailagent.signing import check_form
from mailagent.collector.settings import CollectorSettings

from .conftest import JSON

pytestmark = pytest.mark.timeout(120)


def _count(server, table=reports) -> int:
    with server.collector.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def _no_tracebacks(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# 3. Nothing unauthenticated reaches the writer.

def test_unsigned_and_unknown_posts_never_reach_the_writer(client, server, web1, web2, caplog):
    web1.register(client)
    body = web1.report().to_wire()
    for _ in range(100):
        assert client.post("/api/v1/reports", content=body, headers=JSON).status_code == 401
    for _ in range(20):  # well-formed, but web2 has no key
        assert web2.post(client).status_code == 401
    assert server.collector.writer.batches == 0 and _count(server) == 0
    assert web1.post(client).status_code == 200
    assert server.collector.writer.batches == 1
    _no_tracebacks(caplog)


@pytest.mark.parametrize("stamp", ["9" * 5000, b"\xb2", "1" * 13, "-5", "+5", "5_0", "0x10", "1.5"])
def test_malformed_timestamps_are_403_without_a_traceback(client, server, web1, caplog, stamp):
    web1.register(client)
    body = web1.report().to_wire()
    headers = {**signing.sign_request(web1.key, web1.name, body), **JSON,
               signing.H_TIMESTAMP: stamp}
    answer = client.post("/api/v1/reports", content=body, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "bad_signature"
    assert server.collector.writer.batches == 0
    _no_tracebacks(caplog)


@pytest.mark.parametrize("header, value", [
    (signing.H_HOST, "web1.example.org" + "x" * 5000), (signing.H_HOST, b"w\xe9b1"),
    (signing.H_NONCE, "A" * 32), (signing.H_NONCE, "0" * 5000),
    (signing.H_SIGNATURE, "A" * 5000), (signing.H_SIGNATURE, b"\xff" * 88)])
def test_long_and_non_ascii_headers_are_refused_before_queueing(client, server, web1, header,
                                                                value):
    web1.register(client)
    body = web1.report().to_wire()
    headers = {**signing.sign_request(web1.key, web1.name, body), **JSON, header: value}
    answer = client.post("/api/v1/reports", content=body, headers=headers)
    assert answer.status_code in (401, 403), answer.text
    assert server.collector.writer.batches == 0


def test_unicode_digits_are_malformed_in_the_batch_too(engine, web1):
    """Direct callers of ingest (not through HTTP's latin-1 headers) get the same answer."""
    from mailagent.collector import store
    store.register_host(engine, web1.name, web1.public_key)
    body = web1.report().to_wire()
    for stamp in ["٣", "²", "9" * 5000]:
        with pytest.raises(signing.BadSignature):
            check_form({**signing.sign_request(web1.key, web1.name, body),
                        signing.H_TIMESTAMP: stamp})
        headers = {k.lower(): v for k, v in signing.sign_request(web1.key, web1.name, body).items()}
        headers[signing.H_TIMESTAMP.lower()] = stamp
        sub = ingest.Submission(headers, body, datetime.now(timezone.utc))
        outcome = ingest.process_batch(engine, CollectorSettings(database_url="sqlite://"), [sub])
        assert outcome[0].status == 403


# 4. A report dated in the future is refused; latest figures follow generated_at.

def test_a_report_from_the_future_is_refused(client, server, web1):
    web1.register(client)
    ahead = web1.report(deferred=99)
    ahead.generated_at = datetime.now(timezone.utc) + timedelta(days=365)
    answer = web1.post(client, ahead)
    assert answer.status_code == 422 and answer.json()["error"] == "future", answer.text
    assert _count(server) == 0
    assert web1.post(client, web1.report(deferred=3)).status_code == 200
    assert client.get("/api/v1/hosts").json()["hosts"][0]["queue"]["deferred"] == 3


def test_latest_figures_follow_generated_at_out_of_order(client, web1):
    web1.register(client)
    t = datetime.now(timezone.utc)
    for offset, deferred in ((0, 1), (-60, 2), (30, 3)):
        report = web1.report(deferred=deferred)
        report.generated_at = t + timedelta(seconds=offset)
        assert web1.post(client, report).status_code == 200
    host = client.get("/api/v1/hosts").json()["hosts"][0]
    assert host["queue"]["deferred"] == 3
    assert datetime.fromisoformat(host["latest"]["generated_at"]) == t + timedelta(seconds=30)


def test_latest_figures_stored_from_the_future_give_way(client, server, web1):
    """A host frozen before the rule (its latest dated a year ahead) follows again."""
    web1.register(client)
    assert web1.post(client, web1.report(deferred=1)).status_code == 200
    ahead = (datetime.now(timezone.utc) + timedelta(days=365)).isoformat()
    with server.collector.engine.begin() as conn:
        latest = json.loads(conn.execute(select(hosts.c.latest)).scalar())
        conn.execute(hosts.update().values(latest=json.dumps({**latest, "generated_at": ahead})))
    assert web1.post(client, web1.report(deferred=5)).status_code == 200
    assert client.get("/api/v1/hosts").json()["hosts"][0]["queue"]["deferred"] == 5


# 5. Reports are application/json.

@pytest.mark.parametrize("content_type, status", [
    (None, 415), ("text/plain", 415), ("application/x-www-form-urlencoded", 415),
    ("application/json; charset=latin-1", 415), ("application/jsonx", 415),
    ("application/json", 200), ("application/json; charset=utf-8", 200),
    ("Application/JSON;charset=UTF-8", 200)])
def test_reports_must_be_json(client, web1, content_type, status):
    web1.register(client)
    body = web1.report().to_wire()
    headers = signing.sign_request(web1.key, web1.name, body)
    if content_type:
        headers["Content-Type"] = content_type
    assert client.post("/api/v1/reports", content=body, headers=headers).status_code == status


# 7. 200 means stored: SQLite syncs every commit.

def test_sqlite_commits_are_synced(make_server, tmp_path):
    server = make_server(f"sqlite:///{tmp_path}/durable.db")
    with server.collector.ingest_engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
