"""Temp files a crash left between write and rename are cleared when the agent starts."""

from __future__ import annotations

import logging

from mailagent.agent.service import Agent
from mailagent.agent.spool import Spool
from mailagent.report import example_report


def test_agent_start_removes_temp_files_and_keeps_reports(settings, caplog):
    spool = Spool(settings.spool_dir, 10)
    reports = [example_report() for _ in range(2)]
    for report in reports:
        spool.put(report.report_id, report.to_wire())
    kept = {p.name: p.read_bytes() for p in spool.pending()}
    name = next(iter(kept))
    leftovers = [settings.spool_dir / f".{name}.k3j_x2.tmp", settings.spool_dir / ".dropped_total.json.a1.tmp",
                 settings.state_dir / ".last_report.json.q9z.tmp", settings.state_dir / ".log-position.json.0.tmp"]
    for path in leftovers:
        path.write_bytes(b'{"half": ')
    (settings.state_dir / "last_report.json").write_text('{"whole": true}')

    caplog.set_level(logging.INFO, "mailagent.agent")
    agent = Agent(settings)
    assert not [p for p in leftovers if p.exists()]
    assert {p.name: p.read_bytes() for p in agent.spool.pending()} == kept
    assert (settings.state_dir / "last_report.json").read_text() == '{"whole": true}'
    assert sorted(settings.spool_dir.iterdir()) == sorted(settings.spool_dir / n for n in kept)
    assert sum("temp file(s) left by a crash" in r.getMessage() for r in caplog.records) == 2
