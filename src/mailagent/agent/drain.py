"""`mailagent drain`: make a host safe to remove — refuse new mail, empty the queue, say so.

    1. refuse new local mail (drain_postfix.refuse_edits), postfix reload
    2. postqueue -f; wait until the queue is empty or --timeout, flushing again while everything
       waits in deferred (the smarthost may be back)
    3. mail left and drain.relay set: aim Postfix at it (drain_postfix.handover_edits), reload,
       postsuper -r, postqueue -f; wait up to --handover-timeout
    4. print what happened; exit 0 only when the queue is empty (then tell the collector), else 1.
       Nothing is ever deleted, and Postfix is left refusing new mail: re-run the deploy to undo.

Held mail (postsuper -h) is never released: it is reported as left behind, and the drain exits 1.

The collector's notice is an ordinary signed report with lifecycle "drained" carrying the empty
queue (same signature, nonce and report_id checks, so a forged or replayed notice is refused like
any report). Order matters: the collector takes any report newer than the notice as "the host is
back", so the resident agent (`mailagent run`) is stopped first (re-running the deploy starts it
again, which is also what undoes the drain); its spooled reports go next (older, they only add
history); the notice last. It is not spooled when the collector cannot be reached: the host is
about to be destroyed, so the output says how to mark it by hand instead.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from mailagent import signing
from mailagent.agent import drain_postfix as dp
from mailagent.agent.cycle import AGENT_VERSION
from mailagent.agent.postqueue import parse_line
from mailagent.agent.queue_scan import count_folders
from mailagent.agent.reasons import classify
from mailagent.agent.reporter import Backoff, Reporter
from mailagent.agent.settings import AgentSettings
from mailagent.agent.spool import Spool
from mailagent.report import CheckResult, QueueCounts, QueueSection, Report

AGENT_UNIT = "mailagent.service"


@dataclass
class DrainOptions:
    """How long to wait, and how often to look."""

    timeout: float = 120
    handover_timeout: float = 120
    poll_seconds: float = 0.5
    reflush_seconds: float = 15
    progress_seconds: float = 5


@dataclass
class Phase:
    """One flush-and-wait: where mail went, how much left the queue, how long it took."""

    via: str
    target: str
    queued_before: int
    queued_after: int
    seconds: float
    recipients: dict[str, int] | None = None  # sent/bounced/expired per the mail log

    @property
    def left_queue(self) -> int:
        return max(0, self.queued_before - self.queued_after)


@dataclass
class DrainResult:
    queued_at_start: dict[str, int]
    phases: list[Phase] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)
    left_behind: list[str] = field(default_factory=list)
    postfix_changes: list[str] = field(default_factory=list)
    log_error: str | None = None
    collector: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if total(self.remaining) == 0 else 1

    def as_dict(self) -> dict:
        out = asdict(self)
        for phase, data in zip(self.phases, out["phases"]):
            data["left_queue"] = phase.left_queue
        return {**out, "exit_code": self.exit_code, "refusing_new_mail": True}


def total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def deliverable(counts: dict[str, int]) -> int:
    """Messages Postfix may still deliver (everything but hold)."""
    return total(counts) - counts.get("hold", 0)


def leftover_lines(postqueue_lines: list[str], limit: int = 10) -> list[str]:
    """Why the messages still queued are there, grouped: "2 deferred: <reason> (class)"."""
    groups: Counter = Counter()
    for line in postqueue_lines:
        try:
            entry = parse_line(line)
        except (ValueError, TypeError):
            continue
        if entry is None:
            continue
        reasons = {r.delay_reason for r in entry.recipients if r.delay_reason} or {None}
        for reason in reasons:
            groups[(entry.queue_name, reason)] += 1
    return [_leftover(queue, reason, n) for (queue, reason), n in groups.most_common(limit)]


def _leftover(queue: str, reason: str | None, n: int) -> str:
    if queue == "hold":
        return f"{n} on hold (postsuper -h): not released by drain; release (postsuper -H) or lose it"
    if reason is None:
        return f"{n} {queue}: no delivery attempt recorded yet"
    return f"{n} {queue}: {reason[:200]} ({classify(reason).value})"


class Drainer:
    """One drain run against one Postfix instance; `out` receives the progress lines."""

    def __init__(self, settings: AgentSettings, postfix: dp.PostfixControl, options: DrainOptions,
                 out: Callable[[str], None], clock=time.monotonic, sleep=time.sleep):
        self.settings, self.postfix, self.options = settings, postfix, options
        self.out, self.clock, self.sleep = out, clock, sleep
        self.spool: Path | None = None
        self.log = dp.DrainLog(settings.log_source)

    def counts(self) -> dict[str, int]:
        return count_folders(self.spool)

    def run(self) -> DrainResult:
        self.spool = self.postfix.queue_directory()
        self.out(f"refusing new mail: {', '.join(self.refuse())}")
        result = DrainResult(queued_at_start=self.counts())
        self.out(f"queue at start: {describe(result.queued_at_start)}")
        smarthost = self.postfix.get("relayhost").get("relayhost") or "(direct delivery)"
        result.phases.append(self.phase("smarthost", smarthost, self.options.timeout))
        remaining = self.counts()
        if deliverable(remaining) and self.settings.drain.relay:
            result.postfix_changes = self.handover()
            result.phases.append(self.phase("handover", self.settings.drain.relay,
                                            self.options.handover_timeout, requeue=True))
        elif deliverable(remaining):
            self.out("no drain_relay configured: the rest stays queued here")
        result.remaining = self.counts()
        result.log_error = self.log.error
        if total(result.remaining):
            result.left_behind = leftover_lines(self.postfix.queue_json())
        return result

    def refuse(self) -> list[str]:
        """Stop local submission; returns what was changed, for the output."""
        edits = dp.refuse_edits()
        self.postfix.set(edits)
        done = list(edits)
        for service in dp.overriding_services(self.postfix.services_text()):
            self.postfix.set_service(service, "smtpd_client_restrictions", dp.REFUSE_RESTRICTION)
            done.append(f"{service}/smtpd_client_restrictions")
        self.postfix.reload()
        return done

    def handover(self) -> list[str]:
        target = self.settings.drain
        before = self.postfix.get(*dp.HANDOVER_PARAMS)
        edits = dp.handover_edits(target.relay, target.tls, target.ca_file, before)
        changes = dp.changed(before, edits)
        self.postfix.set(edits)
        self.postfix.reload()
        self.out(f"handing over to {target.relay}: " + "; ".join(changes))
        return changes

    def phase(self, via: str, target: str, timeout: float, requeue: bool = False) -> Phase:
        before, logged = self.counts(), self.log.totals()
        started = self.clock()
        if requeue:
            self.postfix.requeue()
        self.postfix.flush()
        after = self.wait(started + timeout, started)
        phase = Phase(via, target, total(before), total(after), round(self.clock() - started, 1),
                      dp.difference(self.settled_totals(), logged))
        self.out(f"{via} ({target}): {phase.left_queue} of {phase.queued_before} message(s) left "
                 f"the queue in {phase.seconds:.0f} s ({recipients(phase.recipients)}); "
                 f"{describe(after)}")
        return phase

    def settled_totals(self) -> dict[str, int] | None:
        """Log totals once the last status lines are written (a message leaves the queue a
        moment after its delivery agent logged, but the log writer may lag: look twice)."""
        for _ in range(10):
            first = self.log.totals()
            self.sleep(self.options.poll_seconds)
            if first == self.log.totals():
                return first
        return self.log.totals()

    def wait(self, deadline: float, started: float) -> dict[str, int]:
        """Poll the queue until nothing deliverable is left or the deadline passes; flush again
        while all of it waits in deferred, so a smarthost that comes back is used at once."""
        last_flush = last_said = started
        shown = None
        while True:
            counts, now = self.counts(), self.clock()
            if deliverable(counts) == 0 or now >= deadline:
                return counts
            if counts != shown or now - last_said >= self.options.progress_seconds:
                self.out(f"  {now - started:5.0f} s  {describe(counts)}")
                shown, last_said = counts, now
            if counts["deferred"] == deliverable(counts) and \
                    now - last_flush >= self.options.reflush_seconds:
                self.postfix.flush()
                last_flush = now
            self.sleep(self.options.poll_seconds)


def recipients(outcomes: dict[str, int] | None) -> str:
    """"recipients: 4 sent, 1 bounced" from the log figures."""
    if outcomes is None:
        return "recipients: unknown, mail log unreadable"
    return "recipients: " + ", ".join(f"{n} {name}" for name, n in outcomes.items() if n or
                                      name == "sent")


def describe(counts: dict[str, int]) -> str:
    """"3 deferred, 1 active (4 queued)" or "empty"."""
    if not total(counts):
        return "empty"
    parts = [f"{n} {queue}" for queue, n in counts.items() if n]
    return f"{', '.join(parts)} ({total(counts)} queued)"


def format_result(result: DrainResult, settings: AgentSettings) -> list[str]:
    """The closing summary, one line each."""
    lines = []
    for phase in result.phases:
        verb = "sent via the smarthost" if phase.via == "smarthost" else "handed over"
        lines.append(f"{verb} ({phase.target}): {phase.left_queue} message(s), "
                     f"{recipients(phase.recipients)}")
        if phase.recipients and (phase.recipients["bounced"] or phase.recipients["expired"]):
            lines.append(f"  WARNING: {phase.recipients['bounced'] + phase.recipients['expired']} "
                         "recipient(s) bounced back to the sender: see the mail log")
    if result.log_error:
        lines.append(f"mail log {settings.log_source} unreadable ({result.log_error}): "
                     "sent and bounced are not told apart")
    if result.left_behind:
        lines.append(f"left behind ({total(result.remaining)}, nothing deleted, still queued):")
        lines += [f"  {line}" for line in result.left_behind]
    lines.append("queue empty: this host can be removed" if result.exit_code == 0 else
                 "queue NOT empty: do not remove this host yet (re-run mailagent drain, or fix "
                 "the reasons above)")
    if result.collector:
        lines.append(f"collector: {result.collector}")
    lines.append("Postfix still refuses new mail" + (" and relays to " + settings.drain.relay
                                                     if result.postfix_changes else "")
                 + ": re-run the deploy to undo.")
    return lines


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
