"""queue_counts: messages per queue from the spool folders, every cycle.

Emits QueueCounts(maildrop=0, incoming=0, active=1, deferred=5, hold=0).
"""

from __future__ import annotations

from mailagent.agent.queue_scan import count_queues
from mailagent.agent.settings import AgentSettings
from mailagent.report import QueueCounts


class Check:
    section = "queue_counts"

    def __init__(self, settings: AgentSettings):
        self.spool = settings.postfix_spool

    def interval_seconds(self) -> float:
        return 0

    def run(self, now: float) -> QueueCounts:
        return count_queues(self.spool)
