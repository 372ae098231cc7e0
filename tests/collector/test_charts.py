"""Inline SVG charts and the metrics exposition: pure functions, checked on their output."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timedelta, timezone

from mailagent.collector import charts, metrics

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_chart_is_well_formed_svg_with_round_axis():
    series = {"deferred": [(T0 + timedelta(minutes=m), float(m)) for m in range(0, 50, 10)],
              "hold": [(T0, None), (T0 + timedelta(minutes=40), 2.0)]}
    svg = charts.line_chart("Queued <messages>", series)
    root = ET.fromstring(svg)  # parses: escaped and well formed
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Queued <messages>" in labels and "40" in labels and "10" in labels
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_empty_chart_says_so():
    assert "no data" in charts.line_chart("x", {"a": []})


def test_nice_axis_tops():
    assert [charts._nice_max(v) for v in (0, 3, 40, 41, 120)] == [4.0, 4.0, 40, 80, 200]


def test_metrics_exposition_escapes_and_types():
    fleet = [{"host": 'we"ird\\host', "queue": {"deferred": 3}, "oldest_age_seconds": 1.5,
              "last_seen": T0.isoformat(), "drained": False, "latest": {"queue": {"bytes": 4096}},
              "open_alerts": [{"kind": "oldest_message"}]}]
    text = metrics.render(fleet, Counter(accepted=2), {"mailagent_collector_x_total": 1})
    assert 'mailagent_host_queue_messages{host="we\\"ird\\\\host",queue="deferred"} 3' in text
    assert 'mailagent_host_alert_firing{host="we\\"ird\\\\host",alert="oldest_message"} 1' in text
    assert 'mailagent_host_queue_bytes{host="we\\"ird\\\\host"} 4096' in text
    assert "# TYPE mailagent_collector_reports_total counter" in text
    assert 'mailagent_collector_reports_total{outcome="replayed"} 0' in text
    assert "# TYPE mailagent_collector_x_total counter" in text
    assert text.count("# TYPE mailagent_host_queue_messages") == 1
