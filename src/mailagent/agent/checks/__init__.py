"""The check registry: one module per check, each with a default on/off.

A check module defines `Check(settings)` with `section` (which part of the report it fills),
`interval_seconds()` (0: every cycle) and `run(now) -> figures`; optionally
`wants_early_run(sections)` (run before its interval is over, given what ran before it this
cycle) and `commit()` (the cycle's report is on disk: save a read position). A check that
raises is turned into CheckResult(success=False, error=...) by the cycle; it never stops it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: its name, default state, and the module holding its `Check`."""

    name: str
    default_enabled: bool
    module: str

    def load(self):
        """The module's Check class (imported on first use)."""
        return importlib.import_module(self.module).Check


CHECKS = MappingProxyType({spec.name: spec for spec in (
    CheckSpec("queue_counts", True, "mailagent.agent.checks.queue_counts"),
    CheckSpec("queue_detail", True, "mailagent.agent.checks.queue_detail"),
    CheckSpec("log_stats", True, "mailagent.agent.checks.log_stats"),
    CheckSpec("postfix_health", True, "mailagent.agent.checks.postfix_health"),
    CheckSpec("relay_reach", True, "mailagent.agent.checks.relay_reach"),
)})
