"""A cycle over the fixture spool tree: failing checks are data, the report and metrics add up."""

from __future__ import annotations

import json
import time

import pytest

from mailagent.agent import metrics
from mailagent.agent.checks.queue_counts import Check as QueueCounts
from mailagent.agent.checks.queue_detail import Check as QueueDetailCheck
from mailagent.agent.cycle import CheckRunner, assemble, queue_section
from mailagent.agent.postqueue import summarise
from mailagent.agent.service import Agent
from mailagent.report import QueueCounts as Counts, ReasonClass, Report


class Boom:
    section = "postfix"

    def interval_seconds(self):
        return 0

    def run(self, now):
        raise RuntimeError("postconf: not found")


class Slow:
    section = "relay"
    runs = 0

    def interval_seconds(self):
        return 900

    def run(self, now):
        self.runs += 1
        raise TimeoutError("timed out")


def test_failing_check_is_data_not_a_crash(settings):
    runner = CheckRunner(settings, {"queue_counts": QueueCounts(settings), "postfix_health": Boom()})
    outcome = runner.run(time.time())
    report = assemble(settings, outcome, None, time.time())
    by_name = {c.name: c for c in report.checks}
    assert by_name["queue_counts"].success and report.queue.counts.deferred == 5
    assert not by_name["postfix_health"].success
    assert by_name["postfix_health"].error == "RuntimeError: postconf: not found"
    assert report.postfix is None


def test_slow_cadence_checks_run_only_when_due(settings):
    slow = Slow()
    runner = CheckRunner(settings, {"relay_reach": slow})
    for t in (0, 60, 120, 900, 960):
        runner.run(t)
    assert slow.runs == 2


@pytest.mark.timeout(20)  # the fake postqueue sleeps 30 s: only the deadline ends it in time
def test_fake_postqueue_detail_with_deadline(settings, tmp_path, fixtures):
    script = tmp_path / "postqueue"
    script.write_text(f"#!/bin/sh\ncat {fixtures / 'postqueue-real-3.7.jsonl'}\nsleep 30\n")
    script.chmod(0o755)
    settings = settings.model_copy(update={"queue_detail_deadline_seconds": 1.0})
    detail = QueueDetailCheck(settings, command=[str(script)]).run(0)
    assert detail.partial and detail.messages == 4


def test_failing_postqueue_raises(settings, tmp_path):
    script = tmp_path / "postqueue"
    script.write_text("#!/bin/sh\necho 'postqueue: fatal: Queue report unavailable - mail system is down' >&2\nexit 69\n")
    script.chmod(0o755)
    with pytest.raises(Exception, match="mail system is down"):
        QueueDetailCheck(settings, command=[str(script)]).run(0)


def test_queue_section_uses_arrival_time_for_age(fixtures):
    detail = summarise((fixtures / "postqueue-real-3.7.jsonl").read_text().splitlines())
    section = queue_section(Counts(deferred=3, hold=1), detail, 1795259387 + 600, 10)
    assert section.oldest_age_seconds == 600
    later = queue_section(Counts(deferred=3, hold=1), detail, 1795259387 + 660, 10)
    assert later.oldest_age_seconds == 660  # carried forward, still right
    assert section.deferred_by_reason == {ReasonClass.connection_refused: 4}
    empty = queue_section(Counts(), detail, 0, 10)
    assert empty.oldest_age_seconds is None and empty.bytes == 0 and not empty.deferred_by_reason


def test_agent_cycle_writes_state_and_metrics(settings, tmp_path):
    (tmp_path / "mail.log").write_text("")
    settings = settings.model_copy(update={"metrics_textfile": tmp_path / "prom" / "mailagent.prom",
                                           "checks": {"queue_detail": False, "relay_reach": False}})
    agent = Agent(settings)
    report = agent.cycle()
    saved = Report.model_validate(json.loads((tmp_path / "state" / "last_report.json").read_text()))
    assert saved.report_id == report.report_id
    text = (tmp_path / "prom" / "mailagent.prom").read_text()
    assert 'mailagent_queue_messages{queue="deferred"} 5\n' in text
    assert 'mailagent_check_success{check="queue_counts"} 1\n' in text
    assert 'mailagent_deliveries_total{status="sent"} 0\n' in text
    assert "mailagent_spool_reports 0\n" in text


def test_metric_counters_accumulate():
    totals = {}
    from mailagent.report import DeliverySection
    metrics.add_deliveries(totals, DeliverySection(sent=2))
    metrics.add_deliveries(totals, DeliverySection(sent=3, bounced=1))
    metrics.add_deliveries(totals, None)
    assert totals["sent"] == 5 and totals["bounced"] == 1


@pytest.mark.timeout(30)
def test_metrics_listener_on_loopback():
    import socket
    import httpx
    from mailagent.agent.metrics_http import serve
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve(f"127.0.0.1:{port}", lambda: "mailagent_spool_reports 3\n")
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200 and response.text == "mailagent_spool_reports 3\n"
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_small_queue_is_listed_again_when_its_counts_change(settings, tmp_path, fixtures):
    script = tmp_path / "postqueue"
    script.write_text(f"#!/bin/sh\necho run >> {tmp_path / 'runs'}\ncat {fixtures / 'postqueue-real-3.7.jsonl'}\n")
    script.chmod(0o755)
    runner = CheckRunner(settings, {"queue_counts": QueueCounts(settings),
                                    "queue_detail": QueueDetailCheck(settings, command=[str(script)])})
    runner.run(0)
    runner.run(60)  # same counts, interval (300 s) not over: not listed
    (settings.postfix_spool / "deferred" / "9" / "ABCDEF1234").touch()
    outcome = runner.run(120)  # one more deferred message: listed at once
    assert (tmp_path / "runs").read_text().count("run") == 2
    assert [r.name for r in outcome.results] == ["queue_counts", "queue_detail"]
