"""Who may do what (collector.auth), against a real server: the registration token only adds
hosts, key rotation needs the old key's signature or the admin token, drained and delete need
the admin token or the host's own key, wrong guesses are rate-limited, and reads need the read
or admin token unless public_read."""

from __future__ import annotations

import base64
import json
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest

from mailagent import signing
from mailagent.collector.auth import FailureLimiter
from mailagent.collector.settings import CollectorSettings, SettingsError, load_settings

from .conftest import ADMIN, READ, TOKEN, HostIdentity

pytestmark = pytest.mark.timeout(120)
REGISTER = "/api/v1/hosts/register"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def private(make_server):
    """A server with the default read side (credentials needed) and a read token."""
    server = make_server(public_read=False, read_token=READ)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield server, http


@pytest.fixture
def new_key(tmp_path) -> HostIdentity:
    """web1.example.org's next key."""
    return HostIdentity("web1.example.org", tmp_path / "next")


def _new_key_body(web1, new_key, replace=True) -> dict:
    return {"host": web1.name, "public_key": new_key.public_key, "replace": replace}


# 1. The registration token only adds hosts.

def test_registration_token_cannot_replace_a_key(client, web1, new_key):
    assert web1.register(client).json()["result"] == "created"
    assert web1.register(client).json()["result"] == "unchanged"
    taken = client.post(REGISTER, json=_new_key_body(web1, new_key), headers=bearer(TOKEN))
    assert taken.status_code == 403, taken.text
    assert web1.post(client).status_code == 200  # still web1's own key


def test_admin_token_replaces_a_key(client, web1, new_key):
    web1.register(client)
    answer = client.post(REGISTER, json=_new_key_body(web1, new_key), headers=bearer(ADMIN))
    assert answer.json()["result"] == "replaced"
    assert web1.post(client).status_code == 403 and new_key.post(client).status_code == 200


def test_rotation_signed_by_the_old_key(client, web1, new_key, web2):
    web1.register(client)
    web2.register(client)
    body = _new_key_body(web1, new_key)
    by_other = web2.signed(client, REGISTER, body)  # web2's own key, about web1
    assert by_other.status_code == 403
    forged = web1.signed(client, REGISTER, body, key=web2.key)  # web2's key, web1's name
    assert forged.status_code == 403
    stale = web1.signed(client, REGISTER, body, now=time.time() - 3600)
    assert stale.status_code == 401 and stale.json()["error"] == "stale"
    body_bytes = json.dumps(body).encode()
    headers = {**signing.sign_request(web1.key, web1.name, body_bytes),
               "Content-Type": "application/json"}
    rotated = client.post(REGISTER, content=body_bytes, headers=headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["result"] == "replaced"
    # Sent again: the old key signed it, and that key is no longer registered.
    assert client.post(REGISTER, content=body_bytes, headers=headers).status_code == 403
    assert new_key.post(client).status_code == 200 and web1.post(client).status_code == 403
    # The old key signs no further rotation.
    back = web1.signed(client, REGISTER, {"host": web1.name, "public_key": web1.public_key,
                                          "replace": True})
    assert back.status_code == 403


def test_delete_and_drained_need_the_admin_token_or_the_hosts_own_key(client, web1, web2):
    web1.register(client)
    web2.register(client)
    drained = f"/api/v1/hosts/{web1.name}/drained"
    assert client.post(drained, json={"drained": True}, headers=bearer(TOKEN)).status_code == 403
    assert client.delete(f"/api/v1/hosts/{web1.name}", headers=bearer(TOKEN)).status_code == 403
    assert web2.signed(client, drained, {"drained": True}).status_code == 403  # not itself
    assert client.get("/api/v1/hosts").json()["hosts"][0]["drained"] is False
    assert web1.signed(client, drained, {"drained": True}).status_code == 200
    assert client.get("/api/v1/hosts").json()["hosts"][0]["drained"] is True
    assert client.post(drained, json={"drained": False}, headers=bearer(ADMIN)).status_code == 200
    assert client.delete(f"/api/v1/hosts/{web1.name}", headers=bearer(ADMIN)).status_code == 200


def test_a_signed_drained_request_is_not_replayable(client, web1):
    web1.register(client)
    path = f"/api/v1/hosts/{web1.name}/drained"
    body = b'{"drained": true}'
    headers = {**signing.sign_request(web1.key, web1.name, body),
               "Content-Type": "application/json"}
    assert client.post(path, content=body, headers=headers).status_code == 200
    assert client.post(path, content=body, headers=headers).status_code == 409


def test_wrong_tokens_are_rate_limited_per_address(make_server, web1):
    server = make_server(auth_failures_per_minute=10)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answers = [web1.register(client, token="x" * 30).status_code for _ in range(12)]
        assert answers[:10] == [401] * 10 and answers[10:] == [429, 429]
        limited = web1.register(client)  # even the right token waits now
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert client.get("/healthz").status_code == 200


def test_the_limiter_refills_evenly():
    now = [0.0]
    limiter = FailureLimiter(10, clock=lambda: now[0])
    for _ in range(10):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    assert limiter.retry_after("a") == 6 and limiter.retry_after("b") == 0
    now[0] = 6.0
    assert limiter.retry_after("a") == 0


@pytest.mark.parametrize("field", ["registration_token", "admin_token", "read_token"])
def test_short_tokens_are_refused_by_the_settings(field):
    with pytest.raises(SettingsError) as err:
        load_settings(environ={f"MAILAGENT_COLLECTOR_{field.upper()}": "short"})
    assert err.value.problems[0].startswith(f"{field}: ") and "24 characters" in str(err.value)


def test_one_token_for_two_roles_is_refused():
    with pytest.raises(ValueError, match="must differ"):
        CollectorSettings(registration_token=TOKEN, admin_token=TOKEN)


# 2. The read side needs a credential by default.

READ_PATHS = ["/", "/hosts/web1.example.org", "/api/v1/hosts", "/api/v1/hosts/web1.example.org",
              "/api/v1/alerts", "/metrics", "/openapi.json"]


def test_reads_need_the_read_or_admin_token(private, web1):
    _, client = private
    web1.register(client)
    assert CollectorSettings().public_read is False
    for path in READ_PATHS:
        anonymous = client.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="mailagent"'
        assert client.get(path, headers=bearer(READ)).status_code == 200, path
        assert client.get(path, headers=bearer(ADMIN)).status_code == 200, path
        assert client.get(path, headers=bearer(TOKEN)).status_code == 403, path
    browser = client.get("/", auth=("anyone", READ))
    assert browser.status_code == 200 and "text/html" in browser.headers["content-type"]
    assert client.get("/", auth=("anyone", "wrong" * 6)).status_code == 401
    junk = {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe").decode()}
    assert client.get("/", headers=junk).status_code == 401
    assert client.get("/docs").status_code == 404


def test_healthz_is_public_and_says_nothing_more(private):
    _, client = private
    assert client.get("/healthz").json() == {"ok": True}


def test_public_read_opts_out(make_server):
    server = make_server(public_read=True)
    assert httpx.get(server.url + "/api/v1/hosts").status_code == 200


@pytest.mark.parametrize("hours", ["nan", "inf", "-1", "0", "1e9", "100000"])
def test_bad_hours_are_422(client, web1, hours):
    web1.register(client)
    answer = client.get(f"/api/v1/hosts/{web1.name}", params={"hours": hours})
    assert answer.status_code == 422, answer.text
    assert client.get(f"/api/v1/hosts/{web1.name}", params={"hours": "2160"}).status_code == 200


# 6. A stale request is told the collector's time.

@pytest.mark.parametrize("offset", [-3600, 3600])
def test_a_stale_report_is_told_the_collectors_time(client, web1, offset):
    web1.register(client)
    answer = web1.post(client, now=time.time() + offset)
    assert answer.status_code == 401 and answer.json()["error"] == "stale"
    assert abs(answer.json()["server_time"] - time.time()) < 5
    assert abs(parsedate_to_datetime(answer.headers["Date"]).timestamp() - time.time()) < 5
