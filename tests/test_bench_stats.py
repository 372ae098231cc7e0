"""The pure figures of bench/relay_throughput.py (bench/relay_stats.py)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from relay_stats import (
    Latency,
    against_target,
    arrivals,
    message_ids,
    percentile,
    rate,
    ratio,
)


def record(message_id: str, second: int) -> dict:
    """A sink mail.jsonl record as far as the benchmark reads it."""
    at = dt.datetime(2024, 5, 1, 12, 0, second, tzinfo=dt.UTC)
    return {"received_at": at.isoformat(timespec="milliseconds"), "headers": {"message_id": message_id}}


def test_percentile_interpolates_between_ranks():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_one_value_and_bad_input():
    assert percentile([0.25], 99) == 0.25
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary():
    latency = Latency.of([0.010] * 98 + [0.500, 1.000])
    assert (latency.count, latency.p50) == (100, pytest.approx(0.010))
    assert latency.p99 == pytest.approx(0.505)
    assert "p50    10.0 ms" in latency.describe()


def test_arrivals_complete_batch_ignores_other_batches():
    ids = message_ids("run-ours", 3)
    assert ids[0] == "<run-ours.0@bench.lab.mailagent.test>"
    records = [record(ids[0], 1), record("<other@x>", 59), record(ids[2], 7), record(ids[1], 4),
               {"received_at": "2024-05-01T12:00:30+00:00", "headers": None}]
    found = arrivals(ids, records)
    assert found.complete
    assert (found.expected, found.arrived, found.missing, found.duplicated) == (3, 3, 0, 0)
    assert found.last_at == dt.datetime(2024, 5, 1, 12, 0, 7, tzinfo=dt.UTC)


def test_arrivals_counts_missing_and_duplicates():
    ids = message_ids("b", 4)
    found = arrivals(ids, [record(ids[0], 1), record(ids[0], 2), record(ids[1], 3)])
    assert not found.complete
    assert (found.arrived, found.missing, found.duplicated) == (2, 2, 1)
    assert found.shortfall() == "2 of 4 missing, 1 arrived more than once"


def test_a_duplicate_alone_makes_a_batch_incomplete():
    ids = message_ids("c", 1)
    assert not arrivals(ids, [record(ids[0], 1), record(ids[0], 1)]).complete


def test_rate_and_ratio():
    assert rate(2000, 80.0) == 25.0
    with pytest.raises(ValueError):
        rate(10, 0.0)
    assert ratio(30.0, 10.0) == 3.0
    assert ratio(None, 10.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None


def test_against_target():
    assert against_target(3.0, 3.0) == "3.00x (target >=3x: met)"
    assert against_target(2.99, 3.0) == "2.99x (target >=3x: NOT met)"
    assert against_target(None, 5.0).startswith("n/a")
