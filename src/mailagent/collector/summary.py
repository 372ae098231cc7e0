"""What of a report is kept where: key figures as report columns, a summary on the host row."""

from __future__ import annotations

from datetime import timezone

from mailagent.report import QUEUE_NAMES, Report


def report_columns(report: Report) -> dict:
    """The report's key figures as `reports` columns (None where the section is missing)."""
    q, d, r = report.queue, report.delivery, report.relay
    cols = {f"queue_{name}": getattr(q.counts, name) if q else None for name in QUEUE_NAMES}
    cols.update(oldest_age_seconds=q.oldest_age_seconds if q else None,
                queue_bytes=q.bytes if q else None,
                relay_reachable=r.reachable if r else None)
    for name in ("sent", "deferred", "bounced", "expired", "rejected", "sasl_auth_failures"):
        cols[name] = getattr(d, name) if d else None
    return cols


def host_summary(report: Report, previous: dict | None) -> dict:
    """The latest figures shown for a host; sections missing now keep their last value."""
    prev = previous or {}
    out = {
        "report_id": str(report.report_id),
        "generated_at": report.generated_at.astimezone(timezone.utc).isoformat(),
        "agent_version": report.agent_version,
        "failed_checks": [c.name for c in report.checks if not c.success],
    }
    out["queue"] = _queue(report) if report.queue else prev.get("queue")
    out["delivery"] = report.delivery.model_dump() if report.delivery else prev.get("delivery")
    out["postfix"] = report.postfix.model_dump() if report.postfix else prev.get("postfix")
    out["relay"] = (report.relay.model_dump(mode="json") if report.relay else prev.get("relay"))
    out["spool"] = report.spool.model_dump() if report.spool else prev.get("spool")
    return out


def _queue(report: Report) -> dict:
    q = report.queue
    reasons = sorted(((k.value, v) for k, v in q.deferred_by_reason.items()),
                     key=lambda kv: (-kv[1], kv[0]))
    return {
        "counts": q.counts.model_dump(),
        "oldest_age_seconds": q.oldest_age_seconds,
        "bytes": q.bytes,
        "deferred_by_reason": dict(reasons),
        "top_destinations": [d.model_dump() for d in q.top_destinations[:5]],
        "partial": q.partial,
    }
