"""One agent cycle: run the due checks, assemble the report, spool it, expose it, send.

A check that raises becomes CheckResult(success=False, error=...) and its section is None; the
cycle itself does not fail. Queue detail is carried between `postqueue -j` runs: its oldest age is
computed from arrival time, so it stays right as time passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from mailagent import __version__ as _pkg_version
from mailagent.agent.checks import CHECKS
from mailagent.agent.postqueue import QueueDetail
from mailagent.agent.settings import AgentSettings
from mailagent.report import (MAX_DSN_CODES, CheckResult, QueueCounts, QueueSection, Report,
                              SpoolSection)

AGENT_VERSION = _pkg_version


@dataclass
class Outcome:
    """What the checks of one cycle produced, by section name."""

    results: list[CheckResult] = field(default_factory=list)
    sections: dict[str, object] = field(default_factory=dict)


class CheckRunner:
    """Holds the enabled checks and when each last ran."""

    def __init__(self, settings: AgentSettings, checks: dict | None = None):
        self.checks = checks if checks is not None else {
            name: CHECKS[name].load()(settings) for name in settings.enabled_checks()}
        self.last_run: dict[str, float] = {}

    def due(self, name: str, now: float, sections: dict) -> bool:
        """Never run, or its interval is over, or the check asks for an early run itself."""
        last, check = self.last_run.get(name), self.checks[name]
        if last is None or now - last >= check.interval_seconds():
            return True
        return bool(getattr(check, "wants_early_run", None) and check.wants_early_run(sections))

    def run(self, now: float) -> Outcome:
        outcome = Outcome()
        for name, check in self.checks.items():
            if not self.due(name, now, outcome.sections):
                continue
            self.last_run[name] = now
            started = time.monotonic()
            try:
                outcome.sections[check.section] = check.run(now)
                error = None
            except Exception as exc:  # a failing check is data, never a crashed cycle
                error = f"{type(exc).__name__}: {exc}"[:2000]
            outcome.results.append(CheckResult(name=name, success=error is None, error=error,
                                               duration_seconds=round(time.monotonic() - started, 6)))
        return outcome

    def commit(self) -> None:
        """Tell checks that keep a read position that their figures are safely spooled."""
        for check in self.checks.values():
            if hasattr(check, "commit"):
                check.commit()


def queue_section(counts: QueueCounts | None, detail: QueueDetail | None, now: float,
                  top_n: int) -> QueueSection | None:
    """Counts every cycle; detail from the latest successful `postqueue -j` pass."""
    if counts is None:
        return None
    if sum(counts.model_dump().values()) == 0:
        return QueueSection(counts=counts, bytes=0)
    if detail is None:
        return QueueSection(counts=counts)
    dsn = dict(sorted(detail.deferred_by_dsn.items(), key=lambda kv: -kv[1])[:MAX_DSN_CODES])
    oldest = None if detail.oldest_arrival is None else max(0.0, now - detail.oldest_arrival)
    return QueueSection(counts=counts, oldest_age_seconds=oldest, bytes=detail.bytes,
                        deferred_by_reason=dict(detail.deferred_by_reason), deferred_by_dsn=dsn,
                        top_destinations=detail.top_destinations(top_n), partial=detail.partial)


def assemble(settings: AgentSettings, outcome: Outcome, detail: QueueDetail | None, now: float,
             spool=None) -> Report:
    """The report for this cycle."""
    s = outcome.sections
    return Report(
        host=settings.host, agent_version=AGENT_VERSION, interval_seconds=settings.interval_seconds,
        role=settings.role,
        generated_at=datetime.fromtimestamp(now, timezone.utc), checks=outcome.results,
        queue=queue_section(s.get("queue_counts"), detail, now, settings.top_destinations),
        delivery=s.get("delivery"), postfix=s.get("postfix"), relay=s.get("relay"),
        spool=SpoolSection(pending=spool.count(), dropped_total=spool.dropped_total()) if spool else None)
