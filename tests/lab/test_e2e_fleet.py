"""The agents on the lab VMs report to the collector: queue figures, an outage, an alert, the dashboard.

Runs on the shared deployed lab (conftest `deployed`): the agents report every 10 s there.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mailagent.lab import sink
from mailagent.lab.mail import flush, send_mail, wait_received
from tests.collector.test_dashboard import chromium
from tests.lab.helpers import restart_sink, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def api(state, path: str):
    collector = state["collector"]
    response = httpx.get(collector["url"] + path, verify=collector["ca_cert"], timeout=10)
    response.raise_for_status()
    return response.json()


def host_view(state, name: str) -> dict:
    return next(h for h in api(state, "/api/v1/hosts")["hosts"] if h["host"] == name)


def test_every_relay_reports_to_the_collector(deployed):
    state, _, _ = deployed
    names = {h["name"] for h in state["hosts"] if h["group"] == "relays"}
    hosts = wait_for(lambda: {h["host"]: h for h in api(state, "/api/v1/hosts")["hosts"]},
                     lambda found: names <= set(found) and all(found[n]["last_seen"] for n in names),
                     "a report from every relay")
    for name in names:
        latest = hosts[name]["latest"]
        assert latest["postfix"]["master_running"] is True
        assert latest["postfix"]["relay_actual"] == latest["postfix"]["relay_expected"]
        assert latest["failed_checks"] == [], [c for c in latest.get("checks", []) if not c.get("success")]


def test_outage_shows_as_deferred_mail_an_alert_and_on_the_dashboard(deployed, tmp_path):
    state, _, _ = deployed
    lab_dir = Path(state["lab_dir"])
    sink.stop(lab_dir)
    try:
        ids = [send_mail(state, "relay1", subject=f"fleet outage {n}") for n in range(5)]
        view = wait_for(lambda: host_view(state, "relay1"),
                        lambda v: v["queue"]["deferred"] >= 5, "5 deferred messages in a report")
        reasons = view["latest"]["queue"]["deferred_by_reason"]
        assert reasons.get("connection_refused", 0) >= 5, reasons
        first_age = view["oldest_age_seconds"]
        later = wait_for(lambda: host_view(state, "relay1"),
                         lambda v: (v["oldest_age_seconds"] or 0) > (first_age or 0),
                         "the oldest age to grow")
        assert later["queue"]["deferred"] >= 5
        alerts = wait_for(lambda: api(state, "/api/v1/alerts"),
                          lambda a: _firing(a, "relay1"), "an alert for relay1")
        kinds = {a["kind"] for a in _firing(alerts, "relay1")}
        dom = dashboard(state, tmp_path)
        assert "relay1" in dom and "relay2" in dom
        assert any(kind in dom for kind in kinds), kinds
    finally:
        restart_sink(state)
    flush(state, "relay1")
    assert all(len(r) == 1 for r in wait_received(state, ids).values())
    wait_for(lambda: host_view(state, "relay1"), lambda v: v["queue"]["deferred"] == 0,
             "the deferred queue to empty")
    # The queue can empty before journald hands the agent every "status=sent" line, so the
    # sent count may complete one report later.
    wait_for(lambda: api(state, "/api/v1/hosts/relay1"),
             lambda d: sum(row["sent"] for row in d["history"]) >= 5, "5 sent in the history")
    # The relay check runs every 60 s in the lab; once it passes, the alerts resolve.
    wait_for(lambda: api(state, "/api/v1/alerts"), lambda a: not _firing(a, "relay1"),
             "relay1's alerts to resolve")


def _firing(alerts, host: str) -> list[dict]:
    rows = alerts["alerts"] if isinstance(alerts, dict) else alerts
    return [a for a in rows if a["host"] == host and a["state"] == "firing"]


def dashboard(state, tmp_path) -> str:
    """The fleet page in headless Chromium: its DOM, and a screenshot kept in artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    url = state["collector"]["url"] + "/"
    trust_lab_ca = "--ignore-certificate-errors"  # the lab collector's certificate: the lab's own CA
    chromium(tmp_path / "chromium", url, trust_lab_ca, f"--screenshot={ARTIFACTS / 'lab-dashboard.png'}")
    return chromium(tmp_path / "chromium", url, trust_lab_ca, "--dump-dom")
