"""queue_detail: `postqueue -j` at a slow cadence under a deadline.

A small queue whose counts changed since the last pass is listed again at once (so a report
never pairs 5 new deferred messages with reasons from before they arrived); a big one waits
for its interval, as listing it costs seconds.

Emits QueueDetail(oldest_arrival=1763722800.0, bytes=10770, deferred_by_reason={connection_refused:
5}, deferred_by_dsn={"4.4.1": 5}, destinations={"example.net": 5}, partial=False). A pass stopped
by its deadline, or with unparsable lines, is flagged partial; it is still a successful check.
"""

from __future__ import annotations

from mailagent.agent.postqueue import QueueDetail, feed_line
from mailagent.agent.checks.queue_counts import Check as QueueCountsCheck
from mailagent.agent.queue_counter import QueueCounterError
from mailagent.agent.runner import stream_lines
from mailagent.agent.settings import AgentSettings
from mailagent.report import QueueCounts

SMALL_QUEUE = 1000


class Check:
    section = "queue_detail"

    def __init__(self, settings: AgentSettings, command: list[str] | None = None):
        self.settings = settings
        self.command = command or self._command(settings)
        self.counts_at_last_run: QueueCounts | None = None

    def wants_early_run(self, sections: dict) -> bool:
        counts = sections.get("queue_counts")
        small = counts is not None and sum(counts.model_dump().values()) < SMALL_QUEUE
        return small and counts != self.counts_at_last_run

    @staticmethod
    def _command(settings: AgentSettings) -> list[str]:
        argv = ["postqueue", "-j"]
        if settings.postfix_config_dir:
            argv += ["-c", str(settings.postfix_config_dir)]
        return argv

    def interval_seconds(self) -> float:
        return self.settings.queue_detail_interval_seconds

    def run(self, now: float) -> QueueDetail:
        try:  # what this pass goes with; a readdir pass, cheap next to the listing itself
            self.counts_at_last_run = QueueCountsCheck(self.settings).run(now)
        except (OSError, QueueCounterError):
            self.counts_at_last_run = None
        detail = QueueDetail()
        seen: set[str] = set()
        complete = stream_lines(self.command, lambda line: feed_line(detail, seen, line),
                                self.settings.queue_detail_deadline_seconds)
        detail.partial = not complete or detail.bad_lines > 0
        return detail
