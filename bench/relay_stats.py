"""Pure figures for bench/relay_throughput.py: percentiles, rates, ratios, arrival checks.

Nothing here does I/O, so tests/test_bench_stats.py checks it on hand-made inputs.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def message_ids(prefix: str, count: int, domain: str = "bench.lab.mailagent.test") -> list[str]:
    """The Message-IDs one batch uses: `<prefix.i@domain>`, so a batch is told apart at the sink."""
    return [f"<{prefix}.{index}@{domain}>" for index in range(count)]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Latency:
    """Submit latencies of one sample, in seconds."""

    count: int
    p50: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        return cls(len(values), percentile(values, 50), percentile(values, 99))

    def describe(self) -> str:
        return f"p50 {self.p50 * 1000:7.1f} ms  p99 {self.p99 * 1000:7.1f} ms  (n={self.count})"


@dataclass(frozen=True)
class Arrivals:
    """What the sink holds of one batch: how many never came, how many came more than once."""

    expected: int
    arrived: int
    missing: int
    duplicated: int
    last_at: dt.datetime | None

    @property
    def complete(self) -> bool:
        """Every message arrived, and exactly once."""
        return self.missing == 0 and self.duplicated == 0

    def shortfall(self) -> str:
        return (f"{self.missing} of {self.expected} missing, {self.duplicated} arrived more than "
                f"once")


def arrivals(expected: Iterable[str], records: Iterable[dict]) -> Arrivals:
    """Match sink records (mail.jsonl dicts) against the expected Message-IDs of one batch."""
    wanted = set(expected)
    counts: Counter[str] = Counter()
    last = None
    for record in records:
        message_id = (record.get("headers") or {}).get("message_id")
        if message_id not in wanted:
            continue
        counts[message_id] += 1
        received = dt.datetime.fromisoformat(record["received_at"])
        last = received if last is None or received > last else last
    duplicated = sum(1 for seen in counts.values() if seen > 1)
    return Arrivals(len(wanted), len(counts), len(wanted) - len(counts), duplicated, last)


def rate(count: int, seconds: float) -> float:
    """Messages per second; a non-positive duration is a measuring error, not infinity."""
    if seconds <= 0:
        raise ValueError(f"a rate needs a positive duration, not {seconds}")
    return count / seconds


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either figure is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def against_target(value: float | None, target: float) -> str:
    """`3.42x (target >=3x: met)`, or `n/a` when a figure is missing."""
    if value is None:
        return "n/a (a figure is missing)"
    verdict = "met" if value >= target else "NOT met"
    return f"{value:.2f}x (target >={target:g}x: {verdict})"
