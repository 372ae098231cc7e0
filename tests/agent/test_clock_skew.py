"""Clock skew against the real collector: a stale refusal tells the agent how far off its clock
is (logged once, shown by `mailagent status`, reports kept), and every request of a long backlog
is signed as it is sent, so the flush never goes stale partway."""

from __future__ import annotations

import json
import logging
import re
import time

import httpx
import pytest

from mailagent import signing
from mailagent.agent.reporter import Backoff, Reporter
from mailagent.agent.service import Agent
from mailagent.agent.settings import load_settings
from mailagent.agent.spool import Spool
from mailagent.cli import main
from mailagent.collector.settings import CollectorSettings
from mailagent.report import example_report
from tests.agent.test_cli import write_settings
from tests.agent.test_with_collector import ADMIN, TOKEN, collector  # noqa: F401 (the fixture)
from tests.collector.conftest import LiveServer
from tests.collector.pgserver import free_port

pytestmark = pytest.mark.timeout(120)
HOST = "web1.example.org"


def register(url: str, key) -> None:
    answer = httpx.post(f"{url}/api/v1/hosts/register", headers={"Authorization": f"Bearer {TOKEN}"},
                        json={"host": HOST, "public_key": signing.public_key_text(key)}, timeout=10)
    assert answer.status_code < 300, answer.text


def near_400(seconds) -> bool:
    """The collector's server_time has whole seconds, and a loaded machine adds latency."""
    return abs(float(seconds) - 400) <= 3


class Clock:
    """The host's clock: the real one plus `ahead` seconds."""

    def __init__(self, ahead: float):
        self.ahead = ahead

    def __call__(self) -> float:
        return time.time() + self.ahead


def test_stale_refusal_gives_the_offset_once_and_keeps_the_reports(collector, tmp_path, settings,  # noqa: F811
                                                                   caplog, capsys):
    (tmp_path / "mail.log").write_text("")
    key = signing.generate_key(tmp_path / "agent.key")
    register(collector.url, key)
    path = write_settings(tmp_path, settings, collector_url=collector.url)
    clock = Clock(ahead=400)  # beyond the collector's max_skew_seconds (300)
    agent = Agent(load_settings(path, {}), clock=clock)
    caplog.set_level(logging.INFO, "mailagent.agent")
    for _ in range(2):
        agent.cycle()
        agent.reporter.backoff.succeeded()
    assert agent.spool.count() == 2 and agent.spool.dropped_total() == 0
    skew_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("clock skew")]
    assert len(skew_lines) == 1, skew_lines  # once, not once per request
    said = re.fullmatch(r"clock skew: this host is (\d+) s ahead of the collector; fix NTP", skew_lines[0])
    assert said and near_400(said.group(1))
    delivery = json.loads((settings.state_dir / "delivery.json").read_text())
    assert near_400(delivery["clock_offset_seconds"])
    assert main(["status", "--settings", path]) == 0
    shown = re.search(r"clock      this host is (\d+) s ahead of the collector; fix NTP", capsys.readouterr().out)
    assert shown and near_400(shown.group(1))

    clock.ahead = 0  # NTP fixed
    caplog.clear()
    agent.cycle()
    # This cycle's report goes; the two made while the clock was ahead are dated 400 s in the
    # future, which the collector refuses for now (422 future): kept, not dropped.
    assert agent.spool.count() == 2 and agent.spool.dropped_total() == 0
    assert agent.reporter.skew.offset is None
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("clock skew")] == [
        "clock skew: resolved, the collector accepts our time"]
    assert main(["status", "--settings", path]) == 0
    assert "clock  " not in capsys.readouterr().out


def test_a_host_behind_sends_its_spool_once_the_clock_is_fixed(collector, tmp_path, settings):  # noqa: F811
    (tmp_path / "mail.log").write_text("")
    key = signing.generate_key(tmp_path / "agent.key")
    register(collector.url, key)
    path = write_settings(tmp_path, settings, collector_url=collector.url)
    clock = Clock(ahead=-400)
    agent = Agent(load_settings(path, {}), clock=clock)
    agent.cycle()
    assert agent.spool.count() == 1 and near_400(-agent.reporter.skew.offset)
    shown = json.loads((settings.state_dir / "delivery.json").read_text())["clock"]
    said = re.fullmatch(r"this host is (\d+) s behind the collector; fix NTP", shown)
    assert said and near_400(said.group(1))
    clock.ahead = 0
    agent.reporter.backoff.succeeded()
    agent.cycle()
    assert agent.spool.count() == 0 and agent.spool.dropped_total() == 0


class SlowTransport(httpx.HTTPTransport):
    """Each answer takes a second to come back (a slow link): the request itself goes at once."""

    def handle_request(self, request):
        response = super().handle_request(request)
        response.read()
        time.sleep(1)
        return response


def test_a_backlog_longer_than_the_skew_window_is_signed_request_by_request(tmp_path):
    server = LiveServer(CollectorSettings(
        listen=f"127.0.0.1:{free_port()}", registration_token=TOKEN, admin_token=ADMIN,
        public_read=True, max_skew_seconds=3, database_url=f"sqlite:///{tmp_path}/collector.db",
        evaluate_interval_seconds=3600, maintenance_interval_seconds=3600)).start()
    try:
        key = signing.generate_key(tmp_path / "agent.key")
        register(server.url, key)
        spool = Spool(tmp_path / "spool", 100)
        for _ in range(6):
            report = example_report()
            spool.put(report.report_id, report.to_wire())
        reporter = Reporter(server.url, HOST, key, spool, Backoff(60, 600), timeout=10,
                            transport=SlowTransport())
        started = time.time()
        result = reporter.flush(started)  # about 6 s for a 3 s window
        reporter.close()
    finally:
        server.stop()
    assert (result.sent, result.error, spool.count()) == (6, None, 0)
    assert time.time() - started > 5  # longer than the window, yet not one request went stale
