"""Alert rules as pure functions: conditions from reports, hold times, silence, transitions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mailagent.collector import rules
from mailagent.collector.settings import AlertSettings
from mailagent.report import DeliverySection, QueueCounts, QueueSection, RelaySection, Report

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def report(deferred=0, oldest=None, delivery=None, relay=None, queue=True) -> Report:
    return Report(host="h1", agent_version="0.1.0", generated_at=T0, interval_seconds=60,
                  queue=QueueSection(counts=QueueCounts(deferred=deferred),
                                     oldest_age_seconds=oldest) if queue else None,
                  delivery=delivery, relay=relay)


def view(conditions, last_seen=T0, drained=False) -> rules.HostView:
    return rules.HostView("h1", last_seen, 60.0, drained, conditions)


def test_deferred_fires_only_after_holding_for_its_time():
    settings = AlertSettings(deferred_threshold=10, deferred_for_seconds=600)
    conds = rules.advance({}, rules.evaluate_report(report(deferred=11), settings), T0)
    assert "queue_deferred" not in rules.firing(view(conds), settings, T0 + timedelta(seconds=599))
    # A later breaching report keeps the original start time.
    conds = rules.advance(conds, rules.evaluate_report(report(deferred=50), settings),
                          T0 + timedelta(seconds=300))
    fired = rules.firing(view(conds, T0 + timedelta(seconds=300)), settings,
                         T0 + timedelta(seconds=600))
    assert "50 deferred" in fired["queue_deferred"]
    cleared = rules.advance(conds, rules.evaluate_report(report(deferred=3), settings), T0)
    assert "queue_deferred" not in cleared


def test_missing_section_keeps_the_last_state():
    settings = AlertSettings(oldest_age_seconds=60)
    conds = rules.advance({}, rules.evaluate_report(report(oldest=120.0), settings), T0)
    conds = rules.advance(conds, rules.evaluate_report(report(queue=False), settings), T0)
    assert "oldest_message" in rules.firing(view(conds), settings, T0)


def test_silence_counts_intervals_and_spares_drained_hosts():
    settings = AlertSettings(silent_intervals=3)
    later = T0 + timedelta(seconds=181)
    assert "host_silent" in rules.firing(view({}), settings, later)
    assert "host_silent" not in rules.firing(view({}), settings, T0 + timedelta(seconds=179))
    assert "host_silent" not in rules.firing(view({}, drained=True), settings, later)
    assert "host_silent" not in rules.firing(view({}, last_seen=None), settings, later)


def test_sasl_relay_and_bounce_rules():
    settings = AlertSettings(bounce_rate=0.1, bounce_min_messages=10)
    relay = RelaySection(reachable=False, code=535, hint="bad credentials", checked_at=T0)
    judged = rules.evaluate_report(report(
        delivery=DeliverySection(sent=8, bounced=2, sasl_auth_failures=1), relay=relay), settings)
    assert {k for k, c in judged.items() if c.holds} == {
        "sasl_auth_failures", "relay_unreachable", "bounce_rate"}
    few = rules.evaluate_report(report(delivery=DeliverySection(sent=1, bounced=1)), settings)
    assert few["bounce_rate"].holds is None  # too few messages to judge


def test_disabled_kinds_never_fire():
    settings = AlertSettings(oldest_age_seconds=60, disabled=["oldest_message", "host_silent"])
    conds = rules.advance({}, rules.evaluate_report(report(oldest=999.0), settings), T0)
    assert rules.firing(view(conds), settings, T0 + timedelta(days=1)) == {}


def test_transitions():
    assert rules.transitions({"a", "b"}, {"b": "x", "c": "y"}) == ({"c"}, {"a"})
