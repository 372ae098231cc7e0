"""log_stats: delivery figures from the mail log since the last report.

Emits DeliverySection(sent=5, deferred=0, bounced=0, expired=0, rejected=0, sasl_auth_failures=0,
tls_deliveries=5, plaintext_deliveries=0). The read position is saved by `commit()`, which the
cycle calls only after the report holding these figures is on disk.
"""

from __future__ import annotations

from pathlib import Path

from mailagent.agent.logsource import FileSource, JournalSource
from mailagent.agent.maillog import DeliveryCounter
from mailagent.agent.settings import AgentSettings
from mailagent.report import DeliverySection


class Check:
    section = "delivery"

    def __init__(self, settings: AgentSettings, source=None):
        self.source = source or make_source(settings)
        self.counter = DeliveryCounter()
        self.pending: dict | None = None

    def interval_seconds(self) -> float:
        return 0

    def run(self, now: float) -> DeliverySection:
        records, self.pending = self.source.read()
        self.counter.reset()
        for record in records:
            self.counter.add(record)
        return self.counter.section()

    def commit(self) -> None:
        if self.pending is not None:
            self.source.commit(self.pending)
            self.pending = None


def make_source(settings: AgentSettings):
    state_dir = Path(settings.state_dir)
    if settings.log_source == "journal":
        return JournalSource(state_dir / "journal-position.json", settings.log_max_lines_per_cycle)
    return FileSource(Path(settings.log_source), state_dir / "log-position.json",
                      settings.log_max_lines_per_cycle)
