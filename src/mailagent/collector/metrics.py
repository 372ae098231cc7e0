"""Prometheus text exposition (format 0.0.4) of the fleet and of the collector itself.

Host figures come from the database, so every replica shows the same fleet; ingest counters
are this process's own (scrape every replica, sum in PromQL).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from mailagent.collector.rules import KINDS
from mailagent.report import QUEUE_NAMES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("accepted", "duplicate", "unknown_host", "stale", "bad_signature", "replayed",
            "invalid", "host_mismatch", "too_large", "unavailable")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


class Exposition:
    """Collects samples grouped by metric family, then renders them."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, **labels: str) -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        family[2].append(f"{name}{_labels(**labels)} {_number(value)}")

    def render(self) -> str:
        out = []
        for name, (kind, help_text, samples) in self._families.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]
        return "\n".join(out) + "\n"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(fleet: list[dict], counters: Counter, extra: dict[str, float]) -> str:
    """The whole /metrics page from the fleet listing and the process's counters."""
    exp = Exposition()
    for host in fleet:
        _host_samples(exp, host)
    exp.add("mailagent_collector_hosts", "gauge", "Registered hosts.", len(fleet))
    exp.add("mailagent_collector_alerts_firing", "gauge", "Alerts firing now.",
            sum(len(h["open_alerts"]) for h in fleet))
    for outcome in sorted(set(OUTCOMES) | set(counters)):
        exp.add("mailagent_collector_reports_total", "counter",
                "Report submissions by outcome, since this process started.",
                counters.get(outcome, 0), outcome=outcome)
    for name, value in extra.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        exp.add(name, kind, name.replace("mailagent_collector_", "").replace("_", " ") + ".", value)
    return exp.render()


def _host_samples(exp: Exposition, host: dict) -> None:
    name = host["host"]
    counts = host["queue"] or {}
    for queue in QUEUE_NAMES:
        if queue in counts:
            exp.add("mailagent_host_queue_messages", "gauge",
                    "Messages in each Postfix queue at the host's latest report.",
                    counts[queue], host=name, queue=queue)
    if host["oldest_age_seconds"] is not None:
        exp.add("mailagent_host_queue_oldest_age_seconds", "gauge",
                "Age of the oldest queued message at the latest report.",
                float(host["oldest_age_seconds"]), host=name)
    queued_bytes = (((host.get("latest") or {}).get("queue")) or {}).get("bytes")
    if queued_bytes is not None:
        exp.add("mailagent_host_queue_bytes", "gauge",
                "Bytes of queued mail at the latest report.", queued_bytes, host=name)
    if host["last_seen"]:
        exp.add("mailagent_host_last_seen_timestamp_seconds", "gauge",
                "When the host's latest report was received (unix time).",
                datetime.fromisoformat(host["last_seen"]).timestamp(), host=name)
    exp.add("mailagent_host_drained", "gauge", "1 when the host is drained (expected quiet).",
            int(host["drained"]), host=name)
    firing = {a["kind"] for a in host["open_alerts"]}
    for kind in KINDS:
        exp.add("mailagent_host_alert_firing", "gauge", "1 while the alert fires for the host.",
                int(kind in firing), host=name, alert=kind)
