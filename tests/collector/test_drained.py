"""Drained hosts and host roles: the signed "drained" notice (a report with lifecycle "drained"),
what clears it, the alerts it silences, the dashboard, and the migration from the drained flag."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from alembic import command
from sqlalchemy import text

from mailagent import signing
from mailagent.collector import migrate
from mailagent.collector.db import make_engine

from .conftest import JSON, HostIdentity
from .test_alert_lifecycle import Receiver
from .test_dashboard import chromium

pytestmark = pytest.mark.timeout(180)


def drained_notice(host: HostIdentity, when: datetime | None = None, **extra):
    report = host.report(deferred=0, lifecycle="drained", **extra)
    if when is not None:
        report.generated_at = when
    return report


def host_row(client: httpx.Client, name: str) -> dict:
    return next(h for h in client.get("/api/v1/hosts").json()["hosts"] if h["host"] == name)


def test_drained_notice_marks_the_host_and_a_later_report_clears_it(client, web1):
    web1.register(client)
    now = datetime.now(timezone.utc)
    before = web1.report(role="hub")
    before.generated_at = now - timedelta(seconds=30)
    assert web1.post(client, before).status_code == 200
    fresh = host_row(client, web1.name)
    assert (fresh["role"], fresh["drained"], fresh["drained_at"]) == ("hub", False, None)

    notice = drained_notice(web1, now, role="hub")
    assert web1.post(client, notice).status_code == 200
    row = host_row(client, web1.name)
    assert row["drained"] is True and datetime.fromisoformat(row["drained_at"]) == now

    late = web1.report(role="hub")  # spooled before the drain, delivered after: history only
    late.generated_at = now - timedelta(seconds=10)
    assert web1.post(client, late).status_code == 200
    assert host_row(client, web1.name)["drained"] is True

    back = web1.report(role="hub")
    back.generated_at = now + timedelta(seconds=60)
    assert web1.post(client, back).status_code == 200
    row = host_row(client, web1.name)
    assert (row["drained"], row["drained_at"], row["role"]) == (False, None, "hub")


def test_forged_unsigned_and_replayed_notices_are_refused(client, web1, web2):
    web1.register(client)
    web2.register(client)
    body = drained_notice(web1).to_wire()
    unsigned = client.post("/api/v1/reports", content=body,
                           headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    forged = signing.sign_request(web2.key, web1.name, body)  # web2's key, web1's name
    assert client.post("/api/v1/reports", content=body,
                       headers={**forged, **JSON}).status_code == 403
    as_other = signing.sign_request(web2.key, web2.name, body)  # web2 speaking about web1
    assert client.post("/api/v1/reports", content=body,
                       headers={**as_other, **JSON}).status_code == 403
    assert host_row(client, web1.name)["drained"] is False

    headers = signing.sign_request(web1.key, web1.name, body)
    assert client.post("/api/v1/reports", content=body,
                       headers={**headers, **JSON}).status_code == 200
    client.post(f"/api/v1/hosts/{web1.name}/drained", json={"drained": False},
                headers={"Authorization": "Bearer test-admin-token-0123456789"})
    replay = client.post("/api/v1/reports", content=body, headers={**headers, **JSON})
    assert replay.status_code == 409
    assert host_row(client, web1.name)["drained"] is False


def test_silent_alert_resolves_once_drained_and_stays_quiet(make_server, database_url, web1):
    hook = Receiver()
    try:
        server = make_server(database_url, alerts={"silent_intervals": 2},
                             notify={"webhook_url": hook.url, "webhook_backoff_seconds": 0.05})
        with httpx.Client(base_url=server.url) as client:
            web1.register(client)
            web1.post(client, web1.report().model_copy(update={"interval_seconds": 0.1}))
            time.sleep(0.5)  # more than 2 intervals of 0.1 s: silent
            assert [c["kind"] for c in server.call(server.collector.evaluate_now)] == ["host_silent"]
            notice = drained_notice(web1).model_copy(update={"interval_seconds": 0.1})
            assert web1.post(client, notice).status_code == 200
            changes = server.call(server.collector.evaluate_now)
            assert [(c["kind"], c["state"]) for c in changes] == [("host_silent", "resolved")]
            time.sleep(0.5)  # silent again, but drained: nothing fires
            assert server.call(server.collector.evaluate_now) == []
            assert host_row(client, web1.name)["open_alerts"] == []
            events = hook.wait_for(2)
            assert [(e["kind"], e["state"]) for e in events] == [("host_silent", "firing"),
                                                                 ("host_silent", "resolved")]
            # Back in service: a normal report clears drained, and silence alerts again.
            web1.post(client, web1.report().model_copy(update={"interval_seconds": 0.1}))
            time.sleep(0.5)
            assert [c["kind"] for c in server.call(server.collector.evaluate_now)] == ["host_silent"]
    finally:
        hook.close()


def test_dashboard_shows_hubs_apart_and_drained_hosts_as_drained(make_server, tmp_path):
    server = make_server(alerts={"silent_intervals": 2})
    hub, web, gone = (HostIdentity(n, tmp_path) for n in
                      ("hub.lab.mailagent.test", "web1.lab.mailagent.test", "web2.lab.mailagent.test"))
    with httpx.Client(base_url=server.url) as client:
        for host in (hub, web, gone):
            host.register(client)
        hub.post(client, hub.report(deferred=7, role="hub"))
        web.post(client, web.report())
        gone.post(client, gone.report().model_copy(update={"interval_seconds": 0.1}))
        time.sleep(0.5)
        server.call(server.collector.evaluate_now)  # gone is silent: host_silent fires
        gone.post(client, drained_notice(gone).model_copy(update={"interval_seconds": 0.1}))
        assert host_row(client, gone.name)["open_alerts"]  # resolves at the next pass only
    dom = chromium(tmp_path / "profile", server.url + "/", "--dump-dom")
    hubs, fleet = dom.split('id="hubs"')[1].split("</table>")[0], dom.split('id="fleet"')[1]
    assert dom.index('id="hubs"') < dom.index('id="fleet"')
    assert f'data-host="{hub.name}"' in hubs and f'data-host="{hub.name}"' not in fleet
    assert f'data-host="{web.name}"' in fleet and f'data-host="{gone.name}"' in fleet
    row = fleet.split(f'data-host="{gone.name}"')[1].split("</tr>")[0]
    assert "badge drained" in row and "badge firing" not in row and "host_silent" not in row
    assert 'id="firing-alerts"' not in dom


def test_migration_turns_the_drained_flag_into_drained_at(database_url):
    engine = make_engine(database_url)
    try:
        config = migrate._config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(text(
                "INSERT INTO hosts (name, public_key, registered_at, last_seen, drained) VALUES "
                "('old', 'k', '2026-01-01 00:00:00', '2026-01-02 00:00:00', :t), "
                "('live', 'k', '2026-01-01 00:00:00', NULL, :f)"), {"t": True, "f": False})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(text("SELECT name, role, drained_at FROM hosts"))}
        assert rows["old"].role == rows["live"].role == "relay"
        assert str(rows["old"].drained_at).startswith("2026-01-02") and rows["live"].drained_at is None
    finally:
        engine.dispose()
