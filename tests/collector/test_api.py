"""The HTTP API against a real uvicorn server, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import func, select

from mailagent import signing
from mailagent.collector.db import nonces, reports

from .conftest import ADMIN, JSON, TOKEN

pytestmark = pytest.mark.timeout(120)


def _count(server, table) -> int:
    with server.collector.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_register_is_idempotent_and_rotation_needs_replace(client, web1, tmp_path):
    assert web1.register(client).json()["result"] == "created"
    assert web1.register(client).json()["result"] == "unchanged"
    other = signing.public_key_text(signing.generate_key(tmp_path / "other.key"))
    body = {"host": web1.name, "public_key": other}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert client.post("/api/v1/hosts/register", json=body, headers=admin).status_code == 409
    replaced = client.post("/api/v1/hosts/register", json={**body, "replace": True},
                           headers=admin)
    assert replaced.json()["result"] == "replaced"
    # The old key no longer authenticates the host.
    assert web1.post(client).status_code == 403


def test_register_needs_the_token_and_a_real_key(client, web1):
    assert web1.register(client, token="wrong").status_code == 401
    no_auth = client.post("/api/v1/hosts/register", json={"host": "a", "public_key": "x"})
    assert no_auth.status_code == 401
    bad_key = client.post("/api/v1/hosts/register", json={"host": "a", "public_key": "bm90IGEga2V5"},
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad_key.status_code == 422


def test_accepted_report_updates_the_fleet(client, server, web1):
    web1.register(client)
    answer = web1.post(client, web1.report(deferred=7, oldest=90.0))
    assert answer.status_code == 200, answer.text
    assert answer.json()["duplicate"] is False
    fleet = client.get("/api/v1/hosts").json()["hosts"]
    assert [h["host"] for h in fleet] == [web1.name]
    assert fleet[0]["queue"]["deferred"] == 7
    assert fleet[0]["oldest_age_seconds"] == 90.0
    assert fleet[0]["last_seen"] is not None
    detail = client.get(f"/api/v1/hosts/{web1.name}").json()
    assert len(detail["history"]) == 1 and detail["history"][0]["deferred"] == 7
    assert client.get("/api/v1/hosts/nope.example.org").status_code == 404


def test_resend_is_idempotent(client, server, web1):
    web1.register(client)
    report = web1.report(deferred=1)
    assert web1.post(client, report).json()["duplicate"] is False
    again = web1.post(client, report)  # re-signed: fresh nonce, same report_id
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert _count(server, reports) == 1


def test_unknown_host_and_stale_timestamp_are_401(client, server, web1):
    assert web1.post(client).status_code == 401
    web1.register(client)
    assert web1.post(client, now=time.time() - 3600).status_code == 401
    assert web1.post(client, now=time.time() + 3600).status_code == 401
    unsigned = client.post("/api/v1/reports", content=web1.report().to_wire(), headers=JSON)
    assert unsigned.status_code == 401
    assert _count(server, reports) == 0


def test_forged_and_cross_host_reports_are_403(client, server, web1, web2):
    web1.register(client)
    web2.register(client)
    body = web1.report().to_wire()
    forged = signing.sign_request(web2.key, web1.name, body)  # web2 signs as web1
    assert client.post("/api/v1/reports", content=body,
                       headers={**forged, **JSON}).status_code == 403
    headers = signing.sign_request(web1.key, web1.name, body)
    evil = body.replace(b'"deferred":0', b'"deferred":9')
    assert client.post("/api/v1/reports", content=evil,
                       headers={**headers, **JSON}).status_code == 403
    # web2, signing honestly, cannot report about web1.
    about_web1 = web2.post(client, body=web1.report().to_wire())
    assert about_web1.status_code == 403
    assert about_web1.json()["error"] == "host_mismatch"
    assert _count(server, reports) == 0


def test_replayed_request_is_409(client, server, web1):
    web1.register(client)
    body = web1.report().to_wire()
    headers = signing.sign_request(web1.key, web1.name, body)
    assert client.post("/api/v1/reports", content=body,
                       headers={**headers, **JSON}).status_code == 200
    replay = client.post("/api/v1/reports", content=body, headers={**headers, **JSON})
    assert replay.status_code == 409
    assert _count(server, reports) == 1 and _count(server, nonces) == 1


def test_schema_errors_are_422_with_reasons(client, server, web1):
    web1.register(client)
    answer = web1.post(client, body=b'{"host": "web1.example.org", "bogus": 1}')
    assert answer.status_code == 422
    fields = {tuple(e["loc"]) for e in answer.json()["detail"]}
    assert ("bogus",) in fields and ("agent_version",) in fields
    assert web1.post(client, body=b"not json").status_code == 422
    assert _count(server, reports) == 0


def test_oversized_bodies_are_413_by_header_and_by_stream(make_server, database_url, web1):
    server = make_server(database_url, max_report_bytes=2048)
    with httpx.Client(base_url=server.url) as client:
        web1.register(client)
        big = b"{" + b" " * 4096 + b"}"
        assert web1.post(client, body=big).status_code == 413

        def chunks():  # no Content-Length: chunked transfer, the limit is on what arrives
            for _ in range(8):
                yield b" " * 1024
        headers = signing.sign_request(web1.key, web1.name, b"")
        streamed = client.post("/api/v1/reports", content=chunks(),
                               headers={**headers, **JSON})
        assert streamed.status_code == 413
        assert web1.post(client).status_code == 200


def test_metrics_alerts_health_and_openapi(client, server, web1):
    web1.register(client)
    web1.post(client, web1.report(deferred=4))
    web1.post(client, body=b"{}")
    page = client.get("/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert f'mailagent_host_queue_messages{{host="{web1.name}",queue="deferred"}} 4' in text
    assert 'mailagent_collector_reports_total{outcome="accepted"} 1' in text
    assert 'mailagent_collector_reports_total{outcome="invalid"} 1' in text
    assert client.get("/api/v1/alerts").json() == {"alerts": []}
    assert client.get("/healthz").json() == {"ok": True}
    schema = client.get("/openapi.json").json()
    assert "Report" in schema["components"]["schemas"]
    assert "/api/v1/reports" in schema["paths"]
    assert client.get("/docs").status_code == 404  # its page would load scripts from a CDN


def test_drained_flag(client, web1):
    web1.register(client)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    answer = client.post(f"/api/v1/hosts/{web1.name}/drained", json={"drained": True},
                         headers=headers)
    assert answer.status_code == 200
    assert client.get("/api/v1/hosts").json()["hosts"][0]["drained"] is True


def test_decommissioned_host_is_forgotten(client, server, web1):
    web1.register(client)
    web1.post(client, web1.report().model_copy(update={"interval_seconds": 0.01}))
    time.sleep(0.1)
    server.call(server.collector.evaluate_now)  # now silent: an alert fires
    assert client.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"]
    headers = {"Authorization": f"Bearer {ADMIN}"}
    assert client.delete(f"/api/v1/hosts/{web1.name}").status_code == 401
    assert client.delete(f"/api/v1/hosts/{web1.name}", headers=headers).status_code == 200
    assert client.get("/api/v1/hosts").json()["hosts"] == []
    assert client.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"] == []
    assert web1.post(client).status_code == 401  # its key no longer authenticates
    assert client.delete(f"/api/v1/hosts/{web1.name}", headers=headers).status_code == 404
