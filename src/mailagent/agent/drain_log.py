"""What the mail log says happened to recipients since the drain started.

A message leaving the queue is not proof it was delivered: it may have bounced (a 5xx from the
relay, which Postfix returns to the sender). The drain reads Postfix's own status lines from the
same log source the agent uses (`log_source`: a file, or the journal) to tell sent from bounced.

    DrainLog(source).totals()  ->  {"sent": 4, "bounced": 1, "expired": 0}   or None (unreadable)

Reading starts where the log ended when the drain started (file size, or the journal's last
cursor); every call re-reads from there, so phases are told apart by difference.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

from mailagent.agent.maillog import DeliveryCounter, parse_journal_entry, parse_syslog_line

OUTCOMES = ("sent", "bounced", "expired")
JOURNAL_TIMEOUT = 30


class DrainLog:
    def __init__(self, source: str, journalctl: str = "journalctl"):
        self.source, self.journalctl = source, journalctl
        self.error: str | None = None
        try:
            self.start = self._journal_start() if source == "journal" else os.stat(source).st_size
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.error, self.start = f"{type(exc).__name__}: {exc}", None

    def totals(self) -> dict[str, int] | None:
        """Recipients sent/bounced/expired since the start; None when the log cannot be read."""
        if self.error:
            return None
        counter = DeliveryCounter()
        try:
            for record in self._records():
                counter.add(record)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return None
        return {name: getattr(counter, name) for name in OUTCOMES}

    def _records(self):
        if self.source != "journal":
            with open(self.source, "rb") as fh:
                fh.seek(self.start)
                lines = fh.read().decode(errors="replace").splitlines()
            return filter(None, map(parse_syslog_line, lines))
        entries = self._journal(*self._after())
        return filter(None, map(parse_journal_entry, entries))

    def _journal_start(self) -> dict:
        last = self._journal("-n", "1")
        return {"cursor": last[-1]["__CURSOR"]} if last else {"since": int(time.time())}

    def _after(self) -> list[str]:
        if "cursor" in self.start:
            return [f"--after-cursor={self.start['cursor']}"]
        return [f"--since=@{self.start['since']}"]

    def _journal(self, *args: str) -> list[dict]:
        out = subprocess.run([self.journalctl, "-o", "json", "--no-pager", "SYSLOG_FACILITY=2", *args],
                             capture_output=True, text=True, timeout=JOURNAL_TIMEOUT, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def difference(after: dict[str, int] | None, before: dict[str, int] | None) -> dict[str, int] | None:
    """Outcomes between two totals (None when either is unknown)."""
    if after is None or before is None:
        return None
    return {name: after[name] - before.get(name, 0) for name in OUTCOMES}

