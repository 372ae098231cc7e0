"""This host's clock against the collector's, learnt from the collector's `stale` refusals.

A 401 `{"error": "stale", "server_time": 1764579000}` (or, without server_time, the answer's
Date header) means the signed timestamp was outside the collector's max_skew_seconds; the
offset is then ours minus theirs, in whole seconds (positive: this host is ahead):

    clock skew: this host is 400 s ahead of the collector; fix NTP

The report stays spooled; it goes out once the clocks agree again (the first accepted answer
clears the offset).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import httpx

# Offsets closer than this are the same skew (server_time has one-second steps, plus latency).
SAME_WITHIN_SECONDS = 5


def server_time(response: httpx.Response) -> float | None:
    """The collector's clock when it answered: the JSON server_time, else the Date header."""
    try:
        value = response.json().get("server_time")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    except (ValueError, AttributeError):
        pass
    try:
        return parsedate_to_datetime(response.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def error_name(response: httpx.Response) -> str | None:
    """The collector's name for a refusal ("stale", "future", ...), or None."""
    try:
        name = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def describe(offset: float) -> str:
    """One line for the log and `mailagent status`."""
    direction = "ahead of" if offset > 0 else "behind"
    return f"this host is {abs(round(offset))} s {direction} the collector; fix NTP"


class SkewWatch:
    """The last known offset, and whether a new one is worth a log line."""

    def __init__(self) -> None:
        self.offset: float | None = None

    def observe(self, offset: float | None) -> str | None:
        """Record an offset (None: the clocks agree); return a line to log when it changed."""
        previous, self.offset = self.offset, offset
        if offset is None:
            return None if previous is None else "clock skew: resolved, the collector accepts our time"
        if previous is not None and abs(offset - previous) < SAME_WITHIN_SECONDS:
            self.offset = previous  # keep the logged value, so a slow drift is logged once it adds up
            return None
        return f"clock skew: {describe(offset)}"
