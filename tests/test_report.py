"""The report wire schema: round trip, optional sections, bounds the collector relies on."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from mailagent.report import (MAX_REPORT_BYTES, MAX_TOP_DESTINATIONS, CheckResult,
                              DeliverySection, Destination, PostfixSection, QueueCounts,
                              QueueSection, ReasonClass, RelaySection, Report, SpoolSection,
                              example_report)

WHEN = datetime(2026, 11, 21, 11, 0, tzinfo=timezone.utc)


def full_report() -> Report:
    return Report(
        host="web1.example.org", agent_version="0.1.0", generated_at=WHEN, interval_seconds=60,
        checks=[CheckResult(name="queue_counts", success=True, duration_seconds=0.002),
                CheckResult(name="log_stats", success=False, duration_seconds=0.1,
                            error="journalctl: not found")],
        queue=QueueSection(counts=QueueCounts(deferred=5, hold=1), oldest_age_seconds=300,
                           bytes=12000, deferred_by_reason={ReasonClass.connection_refused: 5},
                           deferred_by_dsn={"4.4.1": 5},
                           top_destinations=[Destination(destination="example.net", count=5)]),
        delivery=None,
        postfix=PostfixSection(master_running=True, check_ok=True,
                               relay_expected="[smtp.example.com]:2587",
                               relay_actual="[smtp.example.com]:2587"),
        relay=RelaySection(reachable=False, code=535, hint="bad credentials", checked_at=WHEN),
        spool=SpoolSection(pending=2, dropped_total=7))


def test_roundtrip_through_the_wire():
    report = full_report()
    body = report.to_wire()
    assert Report.from_wire(body) == report
    data = json.loads(body)
    assert data["schema_version"] == 1
    assert data["delivery"] is None
    assert data["queue"]["deferred_by_reason"] == {"connection_refused": 5}
    assert len(body) < MAX_REPORT_BYTES


def test_minimal_report_has_every_section_optional():
    report = Report(host="h1", agent_version="0.1.0", generated_at=WHEN, interval_seconds=60)
    assert isinstance(report.report_id, uuid.UUID)
    assert (report.queue, report.delivery, report.postfix, report.relay, report.spool) == (None,) * 5
    assert DeliverySection().sent == 0


def test_reason_classes_are_the_documented_set():
    assert {r.value for r in ReasonClass} == {"auth_failed", "tls_failure", "connection_refused",
                                              "timeout", "throttled", "rejected", "dns", "other"}


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(extra_field=1),
    lambda d: d["queue"].update(surprise=True),
    lambda d: d.update(schema_version=2),
    lambda d: d.update(generated_at="2026-11-21T11:00:00"),  # naive time
    lambda d: d.update(host="bad host/name"),
    lambda d: d["queue"]["counts"].update(deferred=-1),
    lambda d: d["queue"]["deferred_by_reason"].update(made_up=1),
    lambda d: d["queue"]["deferred_by_dsn"].update({"not-a-dsn": 1}),
    lambda d: d["queue"].update(top_destinations=[{"destination": "d.example", "count": 1}]
                                * (MAX_TOP_DESTINATIONS + 1)),
    lambda d: d["checks"][1].update(error="x" * 5000),
    lambda d: d["checks"][1].update(name="Bad Name"),
    lambda d: d.update(checks=d["checks"] * 20),
    lambda d: d.update(interval_seconds=0),
])
def test_invalid_or_oversized_reports_are_refused(mutate):
    data = json.loads(full_report().to_wire())
    mutate(data)
    with pytest.raises(ValidationError):
        Report.model_validate(data)


def test_too_many_dsn_codes_refused():
    data = json.loads(full_report().to_wire())
    data["queue"]["deferred_by_dsn"] = {f"4.{i}.{j}": 1 for i in range(10) for j in range(10)}
    with pytest.raises(ValidationError):
        Report.model_validate(data)


def test_every_field_is_described():
    def walk(model):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
    for model in (Report, CheckResult, QueueSection, QueueCounts, Destination, DeliverySection,
                  PostfixSection, RelaySection, SpoolSection):
        walk(model)


def test_example_report_is_valid():
    report = example_report()
    assert Report.from_wire(report.to_wire()).host == "web1.example.org"
