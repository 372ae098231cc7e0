"""Prometheus text exposition of a report (the textfile collector format), written atomically.

Queue figures are gauges; deliveries are counters kept by the running agent (they restart at 0
with it, which rate() handles).
"""

from __future__ import annotations

from pathlib import Path

from mailagent.agent.statefile import write_atomic
from mailagent.report import QUEUE_NAMES, DeliverySection, Report

STATUSES = ("sent", "deferred", "bounced", "expired", "rejected")


def add_deliveries(totals: dict[str, int], delivery: DeliverySection | None) -> None:
    """Fold one report's delivery deltas into running totals."""
    if delivery is not None:
        for name, value in delivery.model_dump().items():
            totals[name] = totals.get(name, 0) + value


def render(report: Report, totals: dict[str, int], spooled: int) -> str:
    """The exposition text for one cycle."""
    out: list[str] = []
    metric = _writer(out)
    if report.queue is not None:
        metric("mailagent_queue_messages", "gauge", "Messages per Postfix queue.",
               [({"queue": q}, getattr(report.queue.counts, q)) for q in QUEUE_NAMES])
        if report.queue.oldest_age_seconds is not None:
            metric("mailagent_queue_oldest_age_seconds", "gauge",
                   "Age of the oldest queued message since arrival.", [({}, report.queue.oldest_age_seconds)])
        if report.queue.bytes is not None:
            metric("mailagent_queue_bytes", "gauge", "Bytes of queued messages.", [({}, report.queue.bytes)])
        metric("mailagent_queue_deferred_recipients", "gauge", "Deferred recipients per reason class.",
               [({"reason": r.value}, n) for r, n in report.queue.deferred_by_reason.items()])
    metric("mailagent_deliveries_total", "counter", "Deliveries by status since the agent started.",
           [({"status": s}, totals.get(s, 0)) for s in STATUSES])
    metric("mailagent_sasl_auth_failures_total", "counter", "SASL failures at the smarthost.",
           [({}, totals.get("sasl_auth_failures", 0))])
    metric("mailagent_check_success", "gauge", "1 when the check succeeded in the last cycle.",
           [({"check": c.name}, int(c.success)) for c in report.checks])
    metric("mailagent_check_duration_seconds", "gauge", "Duration of the check in the last cycle.",
           [({"check": c.name}, c.duration_seconds) for c in report.checks])
    metric("mailagent_spool_reports", "gauge", "Reports waiting in the spool.", [({}, spooled)])
    return "".join(out)


def _writer(out: list[str]):
    def metric(name: str, kind: str, help_text: str, samples) -> None:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            out.append(f"{name}{{{label_text}}} {_number(value)}\n" if label_text else f"{name} {_number(value)}\n")
    return metric


def _escape(value: str) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _number(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def write_textfile(path: Path, text: str) -> None:
    """Atomic, world-readable (node_exporter reads it as another user)."""
    write_atomic(Path(path), text.encode(), mode=0o644)
