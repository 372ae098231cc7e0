"""The Prometheus rules and the Grafana dashboard in monitoring/: valid for the real promtool
(Debian's `prometheus` package), the rules' unit tests pass, and every metric they use is one
the agent or the collector exports (a renamed metric fails here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from mailagent.agent import metrics as agent_metrics
from mailagent.report import CheckResult, DeliverySection, QueueCounts, QueueSection, ReasonClass

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "mailagent-rules.yml"
RULE_TESTS = ROOT / "monitoring" / "prometheus" / "mailagent-rules.test.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "mailagent-dashboard.json"
# Series Prometheus makes itself, not any exporter's.
PROMETHEUS_OWN = {"up"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset"}

pytestmark = pytest.mark.timeout(120)


def promtool(*args: str) -> subprocess.CompletedProcess:
    found = shutil.which("promtool")
    if not found:
        raise RuntimeError("promtool not found: apt-get install --no-install-recommends prometheus")
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=60)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions and label names left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if not expr[match.end():].lstrip().startswith("(") and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _type_lines(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


@pytest.fixture
def exported(make_server, web1) -> set[str]:
    """Every metric name on the agent's exposition and on a live collector's /metrics."""
    report = web1.report(
        deferred=3, oldest=120.0,
        queue=QueueSection(counts=QueueCounts(deferred=3), oldest_age_seconds=120.0, bytes=4096,
                           deferred_by_reason={ReasonClass.timeout: 3}),
        checks=[CheckResult(name="relay_reach", success=False, duration_seconds=0.2)],
        delivery=DeliverySection(sent=5, bounced=1, sasl_auth_failures=1))
    agent = agent_metrics.render(report, {"sent": 5}, spooled=0)
    server = make_server(notify={"alertmanager_url": "http://127.0.0.1:9"})
    with httpx.Client(base_url=server.url) as client:
        web1.register(client)
        assert web1.post(client, report).status_code == 200
        collector = client.get("/metrics").raise_for_status().text
    return _type_lines(agent) | _type_lines(collector)


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_the_rules_fire_on_synthetic_series():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert len(tested) >= 4 and tested <= {r["alert"] for r in _rules()}


def test_every_rule_has_a_severity_and_a_summary():
    for rule in _rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_rules_use_only_exported_metrics(exported):
    used = set().union(*(metric_names(r["expr"]) for r in _rules()))
    assert used - exported - PROMETHEUS_OWN == set()
    assert {"mailagent_queue_messages", "mailagent_host_last_seen_timestamp_seconds"} <= used


def test_dashboard_is_grafana_json_with_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queried = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert queried and all(p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
                           for p in queried)
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance"} <= names


def test_dashboard_queries_parse_in_promtool(tmp_path):
    # promtool has no PromQL checker of its own; recording rules go through the same parser.
    exprs = [re.sub(r"\$\{?\w+\}?", ".*", e) for e in _dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_uses_only_exported_metrics(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(e) for e in _dashboard_exprs()))
    for variable in dashboard["templating"]["list"]:
        found = re.match(r"label_values\((\w+),", variable.get("definition", ""))
        used |= {found.group(1)} if found else set()
    assert used - exported - PROMETHEUS_OWN == set()
    assert len(used & exported) >= 15


def test_metric_names_reads_promql():
    expr = ('sum by (instance) (rate(mailagent_deliveries_total{status="bounced"}[1h])) / '
            'on (instance) mailagent_x_total > 0.05 unless time() - up{job="a"} offset 5m > 1e3')
    assert metric_names(expr) == {"mailagent_deliveries_total", "mailagent_x_total", "up"}


def test_exported_metrics_share_one_namespace(exported):
    assert all(name.startswith("mailagent_") for name in exported)
    assert {"mailagent_collector_alertmanager_posts_total",
            "mailagent_queue_deferred_recipients"} <= exported
