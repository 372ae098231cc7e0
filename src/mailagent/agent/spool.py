"""The on-disk report spool: one file per report, oldest first, bounded.

    <spool_dir>/<time_ns:020d>-<report_id>.report   the report body (JSON), written atomically
    <spool_dir>/dropped_total.json                   reports dropped because the spool was full

Every report is spooled before it is sent, so `kill -9` at any moment loses nothing that was
written; a send removes its file only after the collector accepted it. At the bound the oldest
report goes first and the drop is counted (and itself reported in spool.dropped_total).

On a full filesystem `put` raises OSError and leaves no trace (no partial file, no temp file):
every report already spooled stays whole, and the caller sends that report from memory.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from mailagent.agent.statefile import fsync_dir, read_json, write_atomic, write_json

SUFFIX = ".report"


class Spool:
    def __init__(self, folder: Path, max_reports: int):
        self.folder, self.max_reports = Path(folder), max_reports
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o750)

    def put(self, report_id: uuid.UUID, body: bytes) -> Path:
        """Store one report durably (OSError: it is not stored), then enforce the bound."""
        path = self.folder / f"{time.time_ns():020d}-{report_id}{SUFFIX}"
        write_atomic(path, body)
        try:
            self._enforce_bound()
        except OSError:
            pass  # the drop count could not be written: nothing dropped, the next put tries again
        return path

    def pending(self) -> list[Path]:
        """Spooled reports, oldest first (names sort by the time they were spooled)."""
        return sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX))

    def count(self) -> int:
        return sum(1 for name in os.listdir(self.folder) if name.endswith(SUFFIX))

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        fsync_dir(self.folder)

    def drop(self, path: Path) -> None:
        """Remove a report that will never be sent, counting it as dropped."""
        self._add_dropped(1)
        self.remove(path)

    def dropped_total(self) -> int:
        return int((read_json(self.folder / "dropped_total.json", {}) or {}).get("dropped_total", 0))

    def _add_dropped(self, n: int) -> None:
        # Counted before the unlink: a crash in between over-counts by one, never hides a drop.
        write_json(self.folder / "dropped_total.json", {"dropped_total": self.dropped_total() + n})

    def _enforce_bound(self) -> None:
        excess = self.pending()[: max(0, self.count() - self.max_reports)]
        if excess:
            self._add_dropped(len(excess))
            for path in excess:
                path.unlink(missing_ok=True)
            fsync_dir(self.folder)
