"""Property-based fuzzing of ingest: whatever arrives, no 5xx, and nothing is stored from
invalid, unauthenticated, forged or replayed requests."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from mailagent import signing
from mailagent.collector.db import reports
from mailagent.collector.settings import CollectorSettings

from .conftest import TOKEN, HostIdentity, LiveServer
from .pgserver import TempPostgres, free_port

pytestmark = pytest.mark.timeout(600)
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rig(request):
    """One server per database for the module, with two registered hosts."""
    folder = Path(tempfile.mkdtemp(prefix="mailagent-fuzz-"))
    pg = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder}/collector.db"
    else:
        pg = TempPostgres().start()
        url = pg.create_database("fuzz")
    server = LiveServer(CollectorSettings(listen=f"127.0.0.1:{free_port()}", database_url=url,
                                          registration_token=TOKEN,
                                          evaluate_interval_seconds=3600)).start()
    client = httpx.Client(base_url=server.url, timeout=30)
    hosts = [HostIdentity(n, folder) for n in ("web1.example.org", "web2.example.org")]
    for host in hosts:
        assert host.register(client).status_code == 200
    yield server, client, hosts
    client.close()
    server.stop()
    if pg:
        pg.stop()
    shutil.rmtree(folder, ignore_errors=True)


def stored(server) -> int:
    with server.collector.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(reports)).scalar()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12)
header_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=60)


@FUZZ
@given(body=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
def test_signed_garbage_is_refused_and_not_stored(rig, body):
    server, client, (web1, _) = rig
    before = stored(server)
    answer = web1.post(client, body=body)
    assert answer.status_code in (422, 413), answer.text
    assert stored(server) == before


@FUZZ
@given(field=st.sampled_from(["host", "report_id", "generated_at", "interval_seconds", "checks",
                              "queue", "delivery", "schema_version", "agent_version", "spool"]),
       value=json_values)
def test_mutated_reports_are_stored_only_when_valid(rig, field, value):
    server, client, (web1, _) = rig
    doc = json.loads(web1.report(deferred=3).to_wire())
    doc[field] = value
    before = stored(server)
    answer = web1.post(client, body=json.dumps(doc).encode())
    assert answer.status_code in (200, 403, 422), answer.text
    assert stored(server) == before + (1 if answer.status_code == 200 else 0)
    if answer.status_code == 403:
        assert answer.json()["error"] == "host_mismatch"


@FUZZ
@given(headers=st.fixed_dictionaries({}, optional={
    h: header_text for h in signing.SIGNED_HEADERS}), use_known_host=st.booleans())
def test_unauthenticated_requests_are_refused(rig, headers, use_known_host):
    server, client, (web1, _) = rig
    if use_known_host:
        headers[signing.H_HOST] = web1.name
    before = stored(server)
    answer = client.post("/api/v1/reports", content=web1.report().to_wire(), headers=headers)
    assert answer.status_code in (401, 403), answer.text
    assert stored(server) == before


@FUZZ
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255),
       skew=st.sampled_from([0, 0, 302, -302, 10**9]))
def test_forged_tampered_or_stale_requests_are_refused(rig, position, flip, skew):
    server, client, (web1, web2) = rig
    body = bytearray(web1.report().to_wire())
    # 302 s: the signer truncates its clock to whole seconds, so 301 could land on the limit.
    headers = signing.sign_request(web1.key, web1.name, bytes(body), now=time.time() + skew)
    if skew == 0:
        body[position % len(body)] ^= flip  # any change after signing
    before = stored(server)
    answer = client.post("/api/v1/reports", content=bytes(body), headers=headers)
    assert answer.status_code in (401, 403), answer.text
    forged = signing.sign_request(web2.key, web1.name, bytes(body))
    assert client.post("/api/v1/reports", content=bytes(body), headers=forged).status_code == 403
    assert stored(server) == before


@FUZZ
@given(deferred=st.integers(min_value=0, max_value=10**6), repeats=st.integers(1, 3))
def test_replays_are_refused_and_resends_are_idempotent(rig, deferred, repeats):
    server, client, (web1, _) = rig
    body = web1.report(deferred=deferred).to_wire()
    headers = signing.sign_request(web1.key, web1.name, body)
    before = stored(server)
    assert client.post("/api/v1/reports", content=body, headers=headers).status_code == 200
    for _ in range(repeats):
        assert client.post("/api/v1/reports", content=body, headers=headers).status_code == 409
        resend = web1.post(client, body=body)
        assert resend.status_code == 200 and resend.json()["duplicate"] is True
    assert stored(server) == before + 1
