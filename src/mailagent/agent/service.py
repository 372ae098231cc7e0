"""`mailagent run`: the service loop.

Each cycle: checks → report → spool (durable) → commit log position → last_report.json and
metrics → send what the spool holds. SIGTERM/SIGINT set an event: the cycle in progress finishes
(its report is already spooled), then the loop exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from mailagent import signing
from mailagent.agent import metrics
from mailagent.agent.cycle import CheckRunner, assemble
from mailagent.agent.reporter import Backoff, Reporter
from mailagent.agent.settings import AgentSettings
from mailagent.agent.spool import Spool
from mailagent.agent.statefile import read_json, write_json

log = logging.getLogger("mailagent.agent")


class Agent:
    def __init__(self, settings: AgentSettings, runner: CheckRunner | None = None,
                 reporter: Reporter | None = None, clock=time.time):
        self.settings, self.clock = settings, clock
        self.runner = runner or CheckRunner(settings)
        self.spool = Spool(settings.spool_dir, settings.spool_max_reports)
        self.reporter = reporter if reporter is not None else self._reporter()
        self.detail = None
        self.totals: dict[str, int] = {}
        self.metrics_text = ""
        self.stop = threading.Event()

    def _reporter(self) -> Reporter | None:
        s = self.settings
        if not s.collector_url:
            return None
        key = signing.load_private_key(s.key_path)
        verify = str(s.collector_ca_file) if s.collector_ca_file else True
        return Reporter(s.collector_url, s.host, key, self.spool,
                        Backoff(s.interval_seconds, s.backoff_max_seconds),
                        timeout=s.http_timeout_seconds, verify=verify)

    def cycle(self):
        """Run one cycle; return the report it made."""
        now = self.clock()
        outcome = self.runner.run(now)
        if "queue_detail" in outcome.sections:
            self.detail = outcome.sections["queue_detail"]
        report = assemble(self.settings, outcome, self.detail, now, self.spool)
        if self.reporter is not None:
            self.spool.put(report.report_id, report.to_wire())
        self.runner.commit()
        self._expose(report)
        if self.reporter is not None:
            self._send(now)
        return report

    def _expose(self, report) -> None:
        state = Path(self.settings.state_dir)
        write_json(state / "last_report.json", report.model_dump(mode="json"), mode=0o644)
        metrics.add_deliveries(self.totals, report.delivery)
        self.metrics_text = metrics.render(report, self.totals, self.spool.count())
        if self.settings.metrics_textfile:
            metrics.write_textfile(self.settings.metrics_textfile, self.metrics_text)

    def _send(self, now: float) -> None:
        result = self.reporter.flush(now, self.stop.is_set)
        status = {"at": now, "sent": result.sent, "dropped": result.dropped, "error": result.error,
                  "pending": self.spool.count()}
        if result.last_report_id:
            status["last_sent_report_id"], status["last_sent_at"] = result.last_report_id, now
        if result.error:
            log.warning("collector: %s (%d report(s) spooled)", result.error, status["pending"])
        previous = _read_status(self.settings)
        write_json(Path(self.settings.state_dir) / "delivery.json", {**previous, **status}, mode=0o644)

    def run_forever(self) -> None:
        """Cycle every interval until `stop` is set."""
        while not self.stop.is_set():
            started = self.clock()
            try:
                self.cycle()
            except Exception:  # a full disk or a bug in one cycle must not end the service
                log.exception("cycle failed; next one in %s s", self.settings.interval_seconds)
            self.stop.wait(max(0.0, self.settings.interval_seconds - (self.clock() - started)))
        if self.reporter is not None:
            self.reporter.close()


def _read_status(settings: AgentSettings) -> dict:
    return read_json(Path(settings.state_dir) / "delivery.json", {}) or {}


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT finish the current cycle, then stop the loop."""
    def handler(signum, frame):
        log.info("signal %d: finishing the cycle", signum)
        stop.set()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
