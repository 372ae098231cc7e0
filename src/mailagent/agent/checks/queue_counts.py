"""queue_counts: messages per queue from the spool folders, every cycle.

Emits QueueCounts(maildrop=0, incoming=0, active=1, deferred=5, hold=0).

On a deployed host the agent cannot read the queue folders (postfix-owned 0700, and the agent
holds no capability): it asks the queue counter (agent/queue_counter.py) over its socket. Where
that socket does not exist (a run as root or as postfix, a test on a fixture tree) it reads the
folders itself; both count with agent/queue_scan.py.
"""

from __future__ import annotations

from pathlib import Path

from mailagent.agent import queue_counter
from mailagent.agent.queue_scan import count_queues
from mailagent.agent.settings import AgentSettings
from mailagent.report import QueueCounts


class Check:
    section = "queue_counts"

    def __init__(self, settings: AgentSettings, counter: Path = queue_counter.SOCKET):
        self.spool = settings.postfix_spool
        self.counter = counter

    def interval_seconds(self) -> float:
        return 0

    def run(self, now: float) -> QueueCounts:
        if self.counter.exists():
            return queue_counter.ask(self.counter)
        return count_queues(self.spool)
