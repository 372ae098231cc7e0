"""`mailagent status`: what the running agent last saw and sent, read from its state folder."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from mailagent.agent.reasons import HINTS
from mailagent.agent.settings import AgentSettings
from mailagent.agent.statefile import read_json
from mailagent.report import QUEUE_NAMES, ReasonClass, Report


def collect(settings: AgentSettings) -> dict:
    """{"report": last report or None, "delivery": last send status}."""
    state = Path(settings.state_dir)
    return {"report": read_json(state / "last_report.json"),
            "delivery": read_json(state / "delivery.json", {}) or {}}


def format_status(status: dict) -> str:
    """A readable table of the last report."""
    if not status["report"]:
        return "no report yet (is `mailagent run` running?)"
    report = Report.model_validate(status["report"])
    lines = [f"host {report.host}   report {report.generated_at:%Y-%m-%d %H:%M:%S} UTC"]
    lines += _queue_lines(report) + _check_lines(report) + _delivery_lines(status["delivery"])
    return "\n".join(lines)


def _queue_lines(report: Report) -> list[str]:
    q = report.queue
    if q is None:
        return ["queue      unknown (queue_counts failed)"]
    lines = ["queue      " + "  ".join(f"{name} {getattr(q.counts, name)}" for name in QUEUE_NAMES)]
    if q.oldest_age_seconds is not None:
        lines.append(f"oldest     {_age(q.oldest_age_seconds)}" + ("  (partial)" if q.partial else ""))
    for reason, count in sorted(q.deferred_by_reason.items(), key=lambda kv: -kv[1]):
        lines.append(f"deferred   {count:>5} {reason.value}: {HINTS[ReasonClass(reason)]}")
    return lines


def _check_lines(report: Report) -> list[str]:
    return [f"check      {c.name}: {'ok' if c.success else 'FAILED ' + (c.error or '')} "
            f"({c.duration_seconds:.3f}s)" for c in report.checks]


def _delivery_lines(delivery: dict) -> list[str]:
    sent_at = delivery.get("last_sent_at")
    when = datetime.fromtimestamp(sent_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if sent_at else "never"
    held = f", {delivery['unspooled']} held in memory" if delivery.get("unspooled") else ""
    lines = [f"last sent  {when}  ({delivery.get('pending', 0)} spooled{held})"]
    if delivery.get("spool_error"):
        lines.append(f"spool      FAILED {delivery['spool_error']} (reports are sent from memory)")
    if delivery.get("clock"):
        lines.append(f"clock      {delivery['clock']}")
    if delivery.get("error"):
        lines.append(f"collector  {delivery['error']}")
    return lines


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def as_json(status: dict) -> str:
    return json.dumps(status, indent=2, sort_keys=True)
