"""The agent's own registration, spool and reporter against a real collector server: the two
sides share the wire schema and the signing scheme, and this proves they agree."""

from __future__ import annotations

import time

import httpx
import pytest

from mailagent import signing
from mailagent.agent.register import register
from mailagent.agent.reporter import Backoff, Reporter
from mailagent.agent.settings import AgentSettings
from mailagent.agent.spool import Spool

from .conftest import TOKEN

pytestmark = pytest.mark.timeout(120)


def test_spooled_reports_replay_in_order_and_resends_are_duplicates(server, web1, tmp_path):
    key_path = tmp_path / "agent.key"
    key = signing.generate_key(key_path)
    settings = AgentSettings(host=web1.name, collector_url=server.url, key_path=key_path)
    assert register(settings, TOKEN)["result"] == "created"

    spool = Spool(tmp_path / "spool", max_reports=10)
    reports = [web1.report(deferred=n) for n in (1, 2, 3)]
    for report in reports:  # what piled up while the collector was away
        spool.put(report.report_id, report.to_wire())
    reporter = Reporter(server.url, web1.name, key, spool, Backoff(base=1, cap=10))
    try:
        result = reporter.flush(time.time())
        assert (result.sent, result.dropped, result.error) == (3, 0, None)
        # An agent killed after sending but before removing its file sends it again.
        status, _ = reporter.post(reports[-1].to_wire(), time.time())
        assert status == 200
    finally:
        reporter.close()
    with httpx.Client(base_url=server.url) as client:
        host = client.get(f"/api/v1/hosts/{web1.name}").json()
    assert [p["deferred"] for p in host["history"]] == [1, 2, 3]
    assert host["queue"]["deferred"] == 3
