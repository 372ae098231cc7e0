"""The fleet summary as text (what `mailagent collector fleet` and the lab demo print)."""

from __future__ import annotations

from datetime import datetime

from mailagent.collector.dashboard import human_age

COLUMNS = ("HOST", "LAST SEEN", "ACTIVE", "DEFERRED", "HOLD", "OLDEST", "TOP REASON", "ALERTS")


def _row(host: dict, now: datetime) -> tuple[str, ...]:
    queue = host.get("queue") or {}
    seen = host.get("last_seen")
    reasons = host.get("top_deferral_reasons") or []
    alerts = ",".join(a["kind"] for a in host.get("open_alerts", [])) or "-"
    return (host["host"] + (" (hub)" if host.get("role") == "hub" else ""),
            human_age((now - datetime.fromisoformat(seen)).total_seconds()) + " ago" if seen else "never",
            str(queue.get("active", "-")), str(queue.get("deferred", "-")),
            str(queue.get("hold", "-")), human_age(host.get("oldest_age_seconds")),
            f"{reasons[0][0]} ({reasons[0][1]})" if reasons else "-",
            alerts + (" [drained]" if host.get("drained") else ""))


def render(listing: dict) -> str:
    """A fixed-width table from a GET /api/v1/hosts answer."""
    now = datetime.fromisoformat(listing["now"])
    rows = [COLUMNS, *(_row(h, now) for h in listing["hosts"])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    firing = sum(len(h.get("open_alerts", [])) for h in listing["hosts"])
    lines.append(f"{len(listing['hosts'])} hosts, {firing} alerts firing")
    return "\n".join(lines)
