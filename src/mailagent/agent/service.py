"""`mailagent run`: the service loop.

Each cycle: checks → report → spool (durable) → commit log position → last_report.json and
metrics → send what the spool holds. SIGTERM/SIGINT set an event: the cycle in progress finishes
(its report is already spooled), then the loop exits 0.

A full disk does not stop the loop: a report the spool cannot take gets a failed `spool` check
and is sent from memory after the spooled ones (kept in memory, at most MAX_UNSPOOLED, until
the collector takes it); a state file that cannot be written is skipped. Each such problem is
logged once when it starts and once when it clears, never as a traceback per cycle. Temp files
left by a crash between write and rename are removed at start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from mailagent import signing
from mailagent.agent import clock as skew
from mailagent.agent import metrics
from mailagent.agent.cycle import CheckRunner, assemble
from mailagent.agent.reporter import Backoff, FlushResult, Reporter
from mailagent.agent.settings import AgentSettings
from mailagent.agent.spool import Spool
from mailagent.agent.statefile import read_json, write_json
from mailagent.fileio import remove_temp_files
from mailagent.report import CheckResult

log = logging.getLogger("mailagent.agent")
MAX_UNSPOOLED = 60  # reports held in memory while the spool is unwritable (an hour at 60 s)


class Agent:
    def __init__(self, settings: AgentSettings, runner: CheckRunner | None = None,
                 reporter: Reporter | None = None, clock=time.time):
        self.settings, self.clock = settings, clock
        self.runner = runner or CheckRunner(settings)
        self.spool = Spool(settings.spool_dir, settings.spool_max_reports)
        for folder in (settings.spool_dir, settings.state_dir):
            if removed := remove_temp_files(Path(folder)):
                log.info("removed %d temp file(s) left by a crash in %s", len(removed), folder)
        self.reporter = reporter if reporter is not None else self._reporter()
        self.detail = None
        self.totals: dict[str, int] = {}
        self.metrics_text = ""
        self.unspooled: list[bytes] = []
        self.problems: dict[str, str] = {}  # what cannot be written now, by what it is
        self.stop = threading.Event()

    def _reporter(self) -> Reporter | None:
        s = self.settings
        if not s.collector_url:
            return None
        key = signing.load_private_key(s.key_path)
        verify = str(s.collector_ca_file) if s.collector_ca_file else True
        return Reporter(s.collector_url, s.host, key, self.spool,
                        Backoff(s.interval_seconds, s.backoff_max_seconds),
                        timeout=s.http_timeout_seconds, verify=verify, clock=self.clock)

    def cycle(self):
        """Run one cycle; return the report it made."""
        now = self.clock()
        outcome = self.runner.run(now)
        if "queue_detail" in outcome.sections:
            self.detail = outcome.sections["queue_detail"]
        report = assemble(self.settings, outcome, self.detail, now, self.spool)
        if self.reporter is not None:
            self._spool(report)
        self._attempt("log position", self.runner.commit)  # a held report counts as sent
        self._expose(report)
        if self.reporter is not None:
            self._send(now)
        return report

    def _spool(self, report) -> None:
        """Spool the report; when the disk says no, mark it in the report and hold it in memory."""
        started = time.monotonic()
        if self._attempt("spool", lambda: self.spool.put(report.report_id, report.to_wire())):
            return
        report.checks.append(CheckResult(
            name="spool", success=False, duration_seconds=round(time.monotonic() - started, 6),
            error=f"cannot spool, sent from memory: {self.problems['spool']}"[:2000]))
        self.unspooled.append(report.to_wire())
        if len(self.unspooled) > MAX_UNSPOOLED:
            del self.unspooled[0]
            log.warning("spool: unwritable and %d reports held in memory: the oldest is lost",
                        MAX_UNSPOOLED)

    def _attempt(self, what: str, action) -> bool:
        """Run a write; an OSError becomes a problem, logged when it starts and when it clears."""
        try:
            action()
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
            if self.problems.get(what) != error:
                log.warning("%s: %s (the agent goes on without it)", what, error)
            self.problems[what] = error
            return False
        if self.problems.pop(what, None) is not None:
            log.info("%s: written again", what)
        return True

    def _expose(self, report) -> None:
        state = Path(self.settings.state_dir)
        self._attempt("last_report.json", lambda: write_json(
            state / "last_report.json", report.model_dump(mode="json"), mode=0o644))
        metrics.add_deliveries(self.totals, report.delivery)
        self.metrics_text = metrics.render(report, self.totals, self.spool.count())
        if self.settings.metrics_textfile:
            self._attempt("metrics_textfile", lambda: metrics.write_textfile(
                self.settings.metrics_textfile, self.metrics_text))

    def _send(self, now: float) -> None:
        try:
            result = self.reporter.flush(now, self.stop.is_set, self.unspooled)
        except OSError as exc:  # dropping a refused report writes its count
            result = FlushResult(error=f"{type(exc).__name__}: {exc}")
        offset = self.reporter.skew.offset
        status = {"at": now, "sent": result.sent, "dropped": result.dropped, "error": result.error,
                  "pending": self.spool.count(), "unspooled": len(self.unspooled),
                  "spool_error": self.problems.get("spool"),
                  "clock_offset_seconds": None if offset is None else round(offset),
                  "clock": None if offset is None else skew.describe(offset)}
        if result.last_report_id:
            status["last_sent_report_id"], status["last_sent_at"] = result.last_report_id, now
        if result.error:
            log.warning("collector: %s (%d report(s) spooled, %d held in memory)", result.error,
                        status["pending"], status["unspooled"])
        previous = _read_status(self.settings)
        self._attempt("delivery.json", lambda: write_json(
            Path(self.settings.state_dir) / "delivery.json", {**previous, **status}, mode=0o644))

    def run_forever(self) -> None:
        """Cycle every interval until `stop` is set."""
        last_failure = None
        while not self.stop.is_set():
            started = self.clock()
            try:
                self.cycle()
                last_failure = None
            except Exception as exc:  # a bug in one cycle must not end the service
                failure = f"{type(exc).__name__}: {exc}"
                log.error("cycle failed; next one in %s s: %s", self.settings.interval_seconds,
                          failure, exc_info=failure != last_failure)  # the traceback once
                last_failure = failure
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
