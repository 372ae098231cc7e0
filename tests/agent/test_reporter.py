"""The reporter against a real HTTP server on 127.0.0.1 that verifies every signature."""

from __future__ import annotations

import socket
import time

import pytest

from mailagent import signing
from mailagent.agent.reporter import Backoff, Reporter
from mailagent.agent.spool import Spool
from mailagent.report import example_report
from tests.agent.collector_stub import StubCollector


@pytest.fixture()
def key(tmp_path):
    return signing.generate_key(tmp_path / "agent.key")


@pytest.fixture()
def collector(key):
    with StubCollector({"web1.example.org": signing.public_key_text(key)}) as stub:
        yield stub


def make_reporter(url, key, spool, host="web1.example.org"):
    return Reporter(url, host, key, spool, Backoff(base=60, cap=600), timeout=5)


def spool_reports(spool, n):
    reports = [example_report() for _ in range(n)]
    for report in reports:
        spool.put(report.report_id, report.to_wire())
    return reports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(30)
def test_sends_spool_oldest_first_and_empties_it(tmp_path, key, collector):
    spool = Spool(tmp_path / "spool", 100)
    reports = spool_reports(spool, 3)
    reporter = make_reporter(collector.url, key, spool)
    result = reporter.flush(time.time())
    reporter.close()
    assert (result.sent, spool.count()) == (3, 0)
    assert [r.report_id for r in collector.accepted] == [r.report_id for r in reports]
    assert result.last_report_id == str(reports[-1].report_id)


@pytest.mark.timeout(30)
def test_collector_down_keeps_reports_and_backs_off(tmp_path, key):
    spool = Spool(tmp_path / "spool", 100)
    spool_reports(spool, 2)
    reporter = make_reporter(f"http://127.0.0.1:{free_port()}", key, spool)
    now = time.time()
    result = reporter.flush(now)
    assert result.sent == 0 and "ConnectError" in result.error
    assert spool.count() == 2
    assert reporter.backoff.next_at == pytest.approx(now + 60)
    assert reporter.flush(now + 30).error is None  # not tried inside the backoff
    reporter.flush(now + 60)
    assert reporter.backoff.next_at == pytest.approx(now + 60 + 120)  # doubled
    reporter.close()


@pytest.mark.timeout(30)
def test_replay_after_outage_resigns_with_fresh_nonce(tmp_path, key, collector):
    spool = Spool(tmp_path / "spool", 100)
    reports = spool_reports(spool, 2)
    collector.status = 503
    reporter = make_reporter(collector.url, key, spool)
    now = time.time()
    assert reporter.flush(now).error.startswith("HTTP 503")
    collector.status = None
    result = reporter.flush(now + 60)  # backoff over; same reports, new signatures
    reporter.close()
    assert result.sent == 2 and spool.count() == 0
    assert {r.report_id for r in collector.accepted} == {r.report_id for r in reports}
    assert reporter.backoff.failures == 0


@pytest.mark.timeout(30)
def test_wrong_key_is_refused_and_kept(tmp_path, key, collector):
    other = signing.generate_key(tmp_path / "other.key")
    spool = Spool(tmp_path / "spool", 100)
    spool_reports(spool, 1)
    reporter = make_reporter(collector.url, other, spool)
    result = reporter.flush(time.time())
    reporter.close()
    assert collector.refused == ["BadSignature"] and result.sent == 0 and spool.count() == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("code", [413, 422])
def test_permanently_refused_reports_are_dropped_and_counted(tmp_path, key, collector, code):
    spool = Spool(tmp_path / "spool", 100)
    spool_reports(spool, 2)
    collector.status = code
    reporter = make_reporter(collector.url, key, spool)
    result = reporter.flush(time.time())
    reporter.close()
    assert (result.dropped, spool.count(), spool.dropped_total()) == (2, 0, 2)


def test_backoff_is_capped():
    backoff = Backoff(base=60, cap=600)
    delays = [backoff.failed(0) for _ in range(6)]
    assert delays == [60, 120, 240, 480, 600, 600]
    backoff.succeeded()
    assert backoff.ready(0)
