"""Parse `postqueue -j` (JSON Lines, one object per queue file) tolerantly, and summarise it.

Tolerant by design (postqueue(1): "programs should ignore object members that are not listed";
Postfix before 3.9-20231210 could emit broken \\uXXXX escapes): unknown members are ignored,
control characters inside strings are accepted, bad escapes are repaired once, and a line that
still does not parse is counted, not fatal.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from dataclasses import dataclass, field

from mailagent.agent.reasons import classify, dsn_code
from mailagent.report import Destination

# A backslash that starts no valid JSON escape is taken literally (doubled).
_BAD_ESCAPE = re.compile(r'\\(?=u(?![0-9a-fA-F]{4})|[^"\\/bfnrtu])')


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    delay_reason: str | None = None


@dataclass(frozen=True, slots=True)
class QueueEntry:
    queue_name: str
    queue_id: str
    arrival_time: float | None
    message_size: int
    recipients: tuple[Recipient, ...] = ()


@dataclass
class QueueDetail:
    """What the detail pass yields (the queue section's detail fields)."""

    oldest_arrival: float | None = None
    bytes: int = 0
    deferred_by_reason: Counter = field(default_factory=Counter)
    deferred_by_dsn: Counter = field(default_factory=Counter)
    destinations: Counter = field(default_factory=Counter)
    messages: int = 0
    bad_lines: int = 0
    partial: bool = False

    def top_destinations(self, n: int) -> list[Destination]:
        # Largest first; ties in name order, so the list is stable between reports.
        top = heapq.nsmallest(n, self.destinations.items(), key=lambda kv: (-kv[1], kv[0]))
        return [Destination(destination=d[:253], count=c) for d, c in top]


def _loads(line: str):
    try:
        return json.loads(line, strict=False)
    except json.JSONDecodeError:
        return json.loads(_BAD_ESCAPE.sub(r"\\\\", line), strict=False)


def parse_line(line: str) -> QueueEntry | None:
    """One JSON line to a QueueEntry; None for a blank line; ValueError for garbage."""
    if not line.strip():
        return None
    obj = _loads(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("queue_id"), str):
        raise ValueError("not a queue object")
    arrival = obj.get("arrival_time")
    recipients = tuple(
        Recipient(str(r.get("address", "")), r.get("delay_reason") if isinstance(
            r.get("delay_reason"), str) else None)
        for r in obj.get("recipients") or () if isinstance(r, dict))
    return QueueEntry(queue_name=str(obj.get("queue_name", "")), queue_id=obj["queue_id"],
                      arrival_time=float(arrival) if isinstance(arrival, (int, float)) else None,
                      message_size=int(obj.get("message_size") or 0), recipients=recipients)


def domain_of(address: str) -> str:
    """Recipient domain in lower case ('' for a local or empty address)."""
    return address.rpartition("@")[2].lower().strip(">") if "@" in address else ""


def summarise(lines, detail: QueueDetail | None = None) -> QueueDetail:
    """Fold JSON lines into a QueueDetail; a queue ID listed twice is counted once."""
    detail = detail or QueueDetail()
    seen: set[str] = set()
    for line in lines:
        feed_line(detail, seen, line)
    return detail


def feed_line(detail: QueueDetail, seen: set[str], line: str) -> None:
    """Count one line; `seen` holds the queue IDs already counted in this pass."""
    try:
        entry = parse_line(line)
    except (ValueError, TypeError):
        detail.bad_lines += 1
        return
    if entry is not None and entry.queue_id not in seen:
        seen.add(entry.queue_id)
        add_entry(detail, entry)


def add_entry(detail: QueueDetail, entry: QueueEntry) -> None:
    """Count one queue file into the summary."""
    detail.messages += 1
    detail.bytes += entry.message_size
    if entry.arrival_time is not None:
        detail.oldest_arrival = min(entry.arrival_time, detail.oldest_arrival or entry.arrival_time)
    for rcpt in entry.recipients:
        if domain := domain_of(rcpt.address):
            detail.destinations[domain] += 1
        if entry.queue_name == "deferred" and rcpt.delay_reason:
            detail.deferred_by_reason[classify(rcpt.delay_reason)] += 1
            if code := dsn_code(rcpt.delay_reason):
                detail.deferred_by_dsn[code] += 1
