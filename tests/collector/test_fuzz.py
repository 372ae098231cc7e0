"""Property-based fuzzing of ingest: whatever arrives, no 5xx, and nothing is stored from
invalid, unauthenticated, forged, replayed, future-dated or non-JSON requests; a flood of
unauthenticated posts leaves real agents' reports stored. MAILAGENT_FUZZ_EXAMPLES sets the
examples per test (120)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from sqlalchemy import func, select

from mailagent import signing
from mailagent.collector.db import reports
from mailagent.collector.settings import CollectorSettings

from .conftest import JSON, TOKEN, HostIdentity, LiveServer
from .pgserver import TempPostgres, free_port

pytestmark = pytest.mark.timeout(600)
FUZZ = settings(max_examples=int(os.environ.get("MAILAGENT_FUZZ_EXAMPLES", 120)), deadline=None,
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
    answer = client.post("/api/v1/reports", content=web1.report().to_wire(),
                         headers={**headers, **JSON})
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
    answer = client.post("/api/v1/reports", content=bytes(body),
                         headers={**headers, **JSON})
    assert answer.status_code in (401, 403), answer.text
    forged = signing.sign_request(web2.key, web1.name, bytes(body))
    assert client.post("/api/v1/reports", content=bytes(body),
                       headers={**forged, **JSON}).status_code == 403
    assert stored(server) == before


@FUZZ
@given(deferred=st.integers(min_value=0, max_value=10**6), repeats=st.integers(1, 3))
def test_replays_are_refused_and_resends_are_idempotent(rig, deferred, repeats):
    server, client, (web1, _) = rig
    body = web1.report(deferred=deferred).to_wire()
    headers = signing.sign_request(web1.key, web1.name, body)
    before = stored(server)
    assert client.post("/api/v1/reports", content=body,
                       headers={**headers, **JSON}).status_code == 200
    for _ in range(repeats):
        assert client.post("/api/v1/reports", content=body,
                       headers={**headers, **JSON}).status_code == 409
        resend = web1.post(client, body=body)
        assert resend.status_code == 200 and resend.json()["duplicate"] is True
    assert stored(server) == before + 1


def no_tracebacks(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# Header values as they arrive (HTTP headers are bytes; the server reads them as latin-1):
# long digit runs, long anything, and non-ASCII letters and digits.
wild_header = (st.text(alphabet="0123456789", min_size=13, max_size=6000)
               | st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                         min_size=200, max_size=6000)
               | st.text(alphabet=st.characters(min_codepoint=0xa1, max_codepoint=0xff),
                         min_size=1, max_size=60)).map(lambda t: t.encode("latin-1"))


@FUZZ
@given(header=st.sampled_from(signing.SIGNED_HEADERS), value=wild_header)
@example(header=signing.H_TIMESTAMP, value=b"9" * 5000)  # isdigit(), but int() refuses it
@example(header=signing.H_TIMESTAMP, value=b"\xb2")  # "²": isdigit(), int() refuses it
def test_long_and_non_ascii_headers_are_refused(rig, caplog, header, value):
    server, client, (web1, _) = rig
    body = web1.report().to_wire()
    headers = {**signing.sign_request(web1.key, web1.name, body), header: value,
               "Content-Type": "application/json"}
    before = stored(server)
    answer = client.post("/api/v1/reports", content=body, headers=headers)
    assert answer.status_code in (401, 403), answer.text
    assert stored(server) == before
    no_tracebacks(caplog)


@FUZZ
@given(ahead=st.floats(min_value=302, max_value=10**10))
def test_reports_from_the_future_are_refused(rig, ahead):
    server, client, (web1, _) = rig
    report = web1.report()
    report.generated_at = datetime.now(timezone.utc) + timedelta(seconds=ahead)
    before = stored(server)
    answer = web1.post(client, report)
    assert answer.status_code == 422 and answer.json()["error"] == "future", answer.text
    assert stored(server) == before


content_types = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                        max_size=60).filter(lambda t: t.strip() == t)


@FUZZ
@given(content_type=content_types | st.sampled_from(
    ["text/json", "application/json-seq", "application/json; charset=iso-8859-1",
     "multipart/form-data", "application/x-www-form-urlencoded"]))
def test_reports_that_are_not_json_are_415(rig, content_type):
    server, client, (web1, _) = rig
    body = web1.report().to_wire()
    headers = signing.sign_request(web1.key, web1.name, body)
    headers["Content-Type"] = content_type
    before = stored(server)
    answer = client.post("/api/v1/reports", content=body, headers=headers)
    if content_type.split(";")[0].strip().lower() != "application/json":
        assert answer.status_code == 415 and stored(server) == before, answer.text
    else:  # only a charset other than utf-8 is refused then
        assert answer.status_code in (200, 415), answer.text


def _flood(url: str, body: bytes, stop: threading.Event, statuses: list[int]) -> None:
    """Unauthenticated posts of every kind, back to back, until `stop`."""
    kinds = [{}, {"Content-Type": "application/json"},
             {"Content-Type": "application/json", signing.H_HOST: "web1.example.org",
              signing.H_TIMESTAMP: "9" * 5000, signing.H_NONCE: "0" * 32,
              signing.H_SIGNATURE: "A" * 86 + "=="},
             {"Content-Type": "application/json", signing.H_HOST: "nobody.example.org",
              signing.H_TIMESTAMP: "1", signing.H_NONCE: "0" * 32,
              signing.H_SIGNATURE: "A" * 86 + "=="}]
    with httpx.Client(base_url=url, timeout=30) as client:
        n = 0
        while not stop.is_set():
            statuses.append(client.post("/api/v1/reports", content=body,
                                        headers=kinds[n % len(kinds)]).status_code)
            n += 1


def test_a_flood_of_unauthenticated_posts_leaves_real_reports_stored(rig, caplog):
    server, client, hosts = rig
    stop, flood_statuses = threading.Event(), []
    body = hosts[0].report().to_wire()
    flooders = [threading.Thread(target=_flood, args=(server.url, body, stop, flood_statuses))
                for _ in range(4)]
    for thread in flooders:
        thread.start()
    try:
        def agent(host):
            ids, statuses = [], []
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for _ in range(25):
                    report = host.report(report_id=uuid.uuid4())
                    statuses.append(host.post(http, report).status_code)
                    ids.append(str(report.report_id))
            return ids, statuses
        with ThreadPoolExecutor(len(hosts)) as pool:
            results = list(pool.map(agent, hosts))
    finally:
        stop.set()
        for thread in flooders:
            thread.join(30)
    assert all(s == 200 for _, statuses in results for s in statuses)
    assert len(flood_statuses) > 100 and all(400 <= s < 500 for s in flood_statuses)
    ids = [i for found, _ in results for i in found]
    with server.collector.engine.connect() as conn:
        kept = {r[0] for r in conn.execute(select(reports.c.id).where(reports.c.id.in_(ids)))}
    assert kept == set(ids)
    no_tracebacks(caplog)
