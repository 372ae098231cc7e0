"""Telling the collector a drained host may go quiet: one signed report with lifecycle "drained".

The notice is an ordinary report (same signature, nonce and report_id checks at the collector,
so a forged, unsigned or replayed notice is refused like any report) carrying the empty queue.

Order matters. The resident agent (`mailagent run`) would send a normal report a minute later,
and the collector takes any report newer than the notice as "the host is back". So the agent
service is stopped first (re-running the deploy starts it again, which is also what undoes the
drain); reports it had spooled are sent next (they are older, so they only add history); the
notice goes last. It is not spooled when the collector cannot be reached: the host is about
to be destroyed, so the output says how to mark it by hand instead.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import datetime, timezone

from mailagent import signing
from mailagent.agent.cycle import AGENT_VERSION
from mailagent.agent.reporter import Backoff, Reporter
from mailagent.agent.settings import AgentSettings
from mailagent.agent.spool import Spool
from mailagent.report import CheckResult, QueueCounts, QueueSection, Report

AGENT_UNIT = "mailagent.service"


def drained_report(settings: AgentSettings, counts: dict[str, int], now: float) -> Report:
    """The notice: this host's empty queue, lifecycle "drained"."""
    return Report(host=settings.host, agent_version=AGENT_VERSION, role=settings.role,
                  lifecycle="drained", interval_seconds=settings.interval_seconds,
                  generated_at=datetime.fromtimestamp(now, timezone.utc),
                  checks=[CheckResult(name="queue_counts", success=True, duration_seconds=0)],
                  queue=QueueSection(counts=QueueCounts(**counts), bytes=0))


def stop_agent_service(run=subprocess.run) -> str | None:
    """Stop the resident agent if systemd runs it; what was done, or None (not running here)."""
    if shutil.which("systemctl") is None:
        return None
    active = run(["systemctl", "is-active", "--quiet", AGENT_UNIT], capture_output=True)
    if active.returncode != 0:
        return None
    stopped = run(["systemctl", "stop", AGENT_UNIT], capture_output=True, text=True)
    if stopped.returncode != 0:
        return f"could not stop {AGENT_UNIT}: {stopped.stderr.strip()[:200]}"
    return f"stopped {AGENT_UNIT} (its next report would mark the host back in service)"


def notify_collector(settings: AgentSettings, counts: dict[str, int], now: float | None = None,
                     transport=None) -> str:
    """Send spooled reports, then the signed drained notice; one line saying what happened."""
    if not settings.collector_url:
        return "not configured (collector_url unset): nothing sent"
    clock = time.time if now is None else (lambda: now)  # signed as each request goes out
    now = clock()
    try:
        key = signing.load_private_key(settings.key_path)
    except (OSError, ValueError, signing.SigningError) as exc:
        return f"NOT told: cannot load key_path {settings.key_path}: {exc}. {_by_hand(settings)}"
    verify = str(settings.collector_ca_file) if settings.collector_ca_file else True
    spool = Spool(settings.spool_dir, settings.spool_max_reports)
    reporter = Reporter(settings.collector_url, settings.host, key, spool,
                        Backoff(settings.interval_seconds, settings.backoff_max_seconds),
                        timeout=settings.http_timeout_seconds, verify=verify, transport=transport,
                        clock=clock)
    try:
        flushed = reporter.flush(now)
        status, error = reporter.post(drained_report(settings, counts, now).to_wire())
    finally:
        reporter.close()
    sent = f" after {flushed.sent} spooled report(s)" if flushed.sent else ""
    if status is not None and 200 <= status < 300:
        return f"marked drained at {settings.collector_url}{sent}"
    return f"NOT told ({error}). {_by_hand(settings)}"


def _by_hand(settings: AgentSettings) -> str:
    return (f"It will raise host_silent once the host is gone: mark it with POST "
            f"{settings.collector_url}/api/v1/hosts/{settings.host}/drained "
            '{"drained": true} (registration token). The queue is empty either way.')
