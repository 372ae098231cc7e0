"""The dashboard rendered by headless Chromium (Debian's `chromium`) from a real server: the
fleet table lists the hosts and shows a firing alert; screenshots go to artifacts/."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from mailagent.collector.dashboard import human_age
from mailagent.report import DeliverySection, ReasonClass, RelaySection

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.timeout(300)


def chromium(profile: Path, url: str, *mode: str) -> str:
    """Run headless Chromium once against a loopback URL; return its stdout."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--window-size=1366,900", *mode, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _fill_fleet(server, client, hosts):
    """Three hosts: one healthy, one whose smarthost is down (firing), one drained."""
    healthy, broken, drained = hosts
    for host in hosts:
        host.register(client)
    now = datetime.now(timezone.utc)
    for minutes in range(30, -1, -5):  # some history for the host page's charts
        when = now - timedelta(minutes=minutes)
        report = broken.report(deferred=40 - minutes, oldest=7200.0 - minutes * 60,
                               delivery=DeliverySection(sent=0, deferred=5))
        report.generated_at = when
        report.queue.deferred_by_reason = {ReasonClass.connection_refused: 40 - minutes}
        broken.post(client, report)
    last = broken.report(deferred=40, oldest=7300.0, relay=RelaySection(
        reachable=False, code=None, hint="connection refused: is the smarthost up?",
        checked_at=now))
    last.queue.deferred_by_reason = {ReasonClass.connection_refused: 40}
    broken.post(client, last)
    healthy.post(client, healthy.report(deferred=0, oldest=None,
                                        delivery=DeliverySection(sent=12, tls_deliveries=12)))
    drained.post(client, drained.report())
    client.post(f"/api/v1/hosts/{drained.name}/drained", json={"drained": True},
                headers={"Authorization": "Bearer test-admin-token-0123456789"})
    server.call(server.collector.evaluate_now)


@pytest.fixture
def fleet(make_server, tmp_path):
    from .conftest import HostIdentity
    server = make_server(alerts={"oldest_age_seconds": 3600})
    hosts = [HostIdentity(f"relay{i}.lab.mailagent.test", tmp_path) for i in (1, 2, 3)]
    with httpx.Client(base_url=server.url) as client:
        _fill_fleet(server, client, hosts)
    return server, hosts


def test_fleet_table_shows_hosts_and_the_firing_alert(fleet, tmp_path):
    server, (healthy, broken, drained) = fleet
    dom = chromium(tmp_path / "profile", server.url + "/", "--dump-dom")
    assert 'id="fleet"' in dom
    for host in (healthy, broken, drained):
        assert f'data-host="{host.name}"' in dom
    row = dom.split(f'data-host="{broken.name}"')[1].split("</tr>")[0]
    assert 'badge firing' in row and "oldest_message" in row and "relay_unreachable" in row
    assert "connection refused: 40" in row
    assert 'id="firing-alerts"' in dom
    healthy_row = dom.split(f'data-host="{healthy.name}"')[1].split("</tr>")[0]
    assert "badge firing" not in healthy_row
    drained_row = dom.split(f'data-host="{drained.name}"')[1].split("</tr>")[0]
    assert "drained" in drained_row
    assert "http://" not in dom.replace(server.url, "").split("<body")[0]  # nothing external

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "collector-dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path / "profile", server.url + "/", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000


def test_host_page_has_history_charts(fleet, tmp_path):
    server, (_, broken, _) = fleet
    url = f"{server.url}/hosts/{broken.name}"
    dom = chromium(tmp_path / "profile", url, "--dump-dom")
    assert dom.count("<svg") == 3 and "<polyline" in dom
    assert "UNREACHABLE" in dom and "connection refused" in dom
    shot = ARTIFACTS / "collector-host.png"
    ARTIFACTS.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    chromium(tmp_path / "profile", url, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000


def test_human_age():
    assert [human_age(s) for s in (None, 5, 120, 7300, 90000)] == ["–", "5s", "2m", "2h 1m", "1d 1h"]
