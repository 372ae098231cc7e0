"""Alert rules: pure functions from figures and times to which alerts should be firing.

Each report yields, per alert kind, whether its condition holds now (True), does not (False),
or cannot be told from this report (None: the section is missing, so the last state stands).
The host row keeps since when each condition has held; an alert fires once its condition has
held for the kind's hold time, and resolves as soon as it stops holding. `host_silent` comes
from the clock alone. A drained host (emptied by `mailagent drain`, about to be removed) is out
of service: no alert fires for it, and any open one resolves.

    kind                  condition (defaults in AlertSettings)
    queue_deferred        deferred queue > deferred_threshold, held deferred_for_seconds
    oldest_message        oldest queued message older than oldest_age_seconds
    host_silent           no report for silent_intervals x the host's interval
    sasl_auth_failures    >= sasl_failures SASL auth failures at the smarthost in a report
    relay_unreachable     the relay check failed (connect, TLS or AUTH)
    bounce_rate           bounced / (sent + bounced) > bounce_rate over >= bounce_min_messages
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailagent.collector.settings import AlertSettings
from mailagent.report import Report

KINDS = ("queue_deferred", "oldest_message", "host_silent", "sasl_auth_failures",
         "relay_unreachable", "bounce_rate")


@dataclass(frozen=True)
class Condition:
    """Whether a condition holds in one report, and the figures that say so."""

    holds: bool | None
    detail: str = ""


def _deferred(report: Report, s: AlertSettings) -> Condition:
    if report.queue is None:
        return Condition(None)
    n = report.queue.counts.deferred
    return Condition(n > s.deferred_threshold, f"{n} deferred (threshold {s.deferred_threshold})")


def _oldest(report: Report, s: AlertSettings) -> Condition:
    if report.queue is None:
        return Condition(None)
    age = report.queue.oldest_age_seconds or 0.0
    return Condition(age > s.oldest_age_seconds,
                     f"oldest message {age:.0f} s old (limit {s.oldest_age_seconds:.0f} s)")


def _sasl(report: Report, s: AlertSettings) -> Condition:
    if report.delivery is None:
        return Condition(None)
    n = report.delivery.sasl_auth_failures
    return Condition(n >= s.sasl_failures, f"{n} SASL authentication failures at the smarthost")


def _relay(report: Report, s: AlertSettings) -> Condition:
    if report.relay is None:
        return Condition(None)
    r = report.relay
    code = f" (reply {r.code})" if r.code else ""
    return Condition(not r.reachable, f"relay check failed{code}: {r.hint or 'no hint'}")


def _bounces(report: Report, s: AlertSettings) -> Condition:
    if report.delivery is None:
        return Condition(None)
    d = report.delivery
    total = d.sent + d.bounced
    if total < s.bounce_min_messages:
        return Condition(False if d.bounced == 0 else None)
    rate = d.bounced / total
    return Condition(rate > s.bounce_rate, f"{rate:.1%} bounced ({d.bounced} of {total})")


# Each report-driven kind: (rule, hold time in seconds as a function of the settings).
REPORT_RULES = {
    "queue_deferred": (_deferred, lambda s: s.deferred_for_seconds),
    "oldest_message": (_oldest, lambda s: 0.0),
    "sasl_auth_failures": (_sasl, lambda s: 0.0),
    "relay_unreachable": (_relay, lambda s: 0.0),
    "bounce_rate": (_bounces, lambda s: 0.0),
}


def evaluate_report(report: Report, settings: AlertSettings) -> dict[str, Condition]:
    """Every enabled report-driven condition, judged from one report."""
    return {kind: rule(report, settings) for kind, (rule, _) in REPORT_RULES.items()
            if kind not in settings.disabled}


def advance(previous: dict[str, dict], judged: dict[str, Condition],
            when: datetime) -> dict[str, dict]:
    """New `{kind: {"since": iso, "detail": str}}` for conditions holding after a report.

    A condition that keeps holding keeps its original `since`; one judged None is unchanged.
    """
    state = dict(previous)
    for kind, cond in judged.items():
        if cond.holds is None:
            continue
        if cond.holds:
            since = state.get(kind, {}).get("since", when.isoformat())
            state[kind] = {"since": since, "detail": cond.detail}
        else:
            state.pop(kind, None)
    return state


@dataclass(frozen=True)
class HostView:
    """What the evaluator knows about a host."""

    name: str
    last_seen: datetime | None
    interval_seconds: float | None
    drained: bool
    conditions: dict[str, dict]


def firing(host: HostView, settings: AlertSettings, now: datetime) -> dict[str, str]:
    """`{kind: detail}` of every alert that should be firing for `host` at `now`."""
    if host.drained:
        return {}
    out: dict[str, str] = {}
    for kind, cond in host.conditions.items():
        if kind not in REPORT_RULES or kind in settings.disabled:
            continue
        hold = REPORT_RULES[kind][1](settings)
        if (now - datetime.fromisoformat(cond["since"])).total_seconds() >= hold:
            out[kind] = cond["detail"]
    silent = _silent(host, settings, now)
    if silent and "host_silent" not in settings.disabled:
        out["host_silent"] = silent
    return out


def _silent(host: HostView, settings: AlertSettings, now: datetime) -> str | None:
    if host.last_seen is None or not host.interval_seconds:
        return None
    quiet = (now - host.last_seen).total_seconds()
    limit = settings.silent_intervals * host.interval_seconds
    return f"no report for {quiet:.0f} s (limit {limit:.0f} s)" if quiet > limit else None


def transitions(open_kinds: set[str], should_fire: dict[str, str]) -> tuple[set[str], set[str]]:
    """(kinds to fire now, kinds to resolve now) given the alerts already open."""
    return set(should_fire) - open_kinds, open_kinds - set(should_fire)
