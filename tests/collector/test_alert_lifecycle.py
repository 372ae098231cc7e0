"""Alert lifecycle end to end: reports in, alerts firing then resolved, delivered to a real
webhook receiver and a real SMTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aiosmtpd.controller import Controller

from .pgserver import free_port

pytestmark = pytest.mark.timeout(120)


class Receiver:
    """A webhook endpoint: records JSON posts; can fail the first N or hold requests."""

    def __init__(self, fail_first: int = 0):
        self.received: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        self.release = threading.Event()
        self.release.set()
        self.got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.release.wait(30)
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(500)
                else:
                    with receiver.got:
                        receiver.received.append(json.loads(body))
                        receiver.got.notify_all()
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        with self.got:
            self.got.wait_for(lambda: len(self.received) >= count, timeout)
        return list(self.received)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(**kw) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]
    yield make
    for r in made:
        r.close()


def _notify(url, **extra):
    return {"webhook_url": url, "webhook_backoff_seconds": 0.05, **extra}


def test_oldest_message_fires_then_resolves(make_server, database_url, receiver, web1):
    hook = receiver(fail_first=1)  # the first delivery is refused: it must be retried
    server = make_server(database_url, notify=_notify(hook.url),
                         alerts={"oldest_age_seconds": 600})
    with httpx.Client(base_url=server.url) as client:
        web1.register(client)
        web1.post(client, web1.report(deferred=5, oldest=3600.0))
        assert [c["kind"] for c in server.call(server.collector.evaluate_now)] == ["oldest_message"]
        assert server.call(server.collector.evaluate_now) == []  # still firing: no new change
        firing = hook.wait_for(1)[0]
        assert (firing["host"], firing["kind"], firing["state"]) == (web1.name, "oldest_message",
                                                                     "firing")
        assert "3600 s" in firing["detail"] and hook.attempts == 2
        open_alerts = client.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"]
        assert [a["kind"] for a in open_alerts] == ["oldest_message"]

        web1.post(client, web1.report(deferred=0, oldest=None))
        server.call(server.collector.evaluate_now)
        resolved = hook.wait_for(2)[1]
        assert resolved["state"] == "resolved" and resolved["resolved_at"] >= resolved["started_at"]
        assert resolved["id"] == firing["id"]
        assert client.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"] == []
        assert client.get("/api/v1/hosts").json()["hosts"][0]["open_alerts"] == []


def test_silent_host_fires_and_drain_resolves_it(make_server, database_url, receiver, web1):
    hook = receiver()
    server = make_server(database_url, notify=_notify(hook.url), alerts={"silent_intervals": 2})
    with httpx.Client(base_url=server.url) as client:
        web1.register(client)
        web1.post(client, web1.report().model_copy(update={"interval_seconds": 0.1}))
        time.sleep(0.5)  # longer than 2 intervals of 0.1 s: the host is now silent
        server.call(server.collector.evaluate_now)
        assert hook.wait_for(1)[0]["kind"] == "host_silent"
        client.post(f"/api/v1/hosts/{web1.name}/drained", json={"drained": True},
                    headers={"Authorization": "Bearer test-admin-token-0123456789"})
        server.call(server.collector.evaluate_now)
        assert hook.wait_for(2)[1]["state"] == "resolved"


def test_a_hung_webhook_never_blocks_ingest(make_server, receiver, web1):
    hook = receiver()
    hook.release.clear()  # the receiver holds every request until released
    server = make_server(notify=_notify(hook.url, webhook_timeout_seconds=30),
                         alerts={"oldest_age_seconds": 1})
    with httpx.Client(base_url=server.url) as client:
        web1.register(client)
        web1.post(client, web1.report(oldest=100.0))
        server.call(server.collector.evaluate_now)  # the change is queued to the notifier
        for _ in range(5):  # ingest keeps answering while the webhook hangs
            assert web1.post(client, web1.report(oldest=100.0)).status_code == 200
        assert hook.received == []
        hook.release.set()
        assert hook.wait_for(1)[0]["kind"] == "oldest_message"


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def test_alert_mail_goes_through_the_local_relay(make_server, web1):
    inbox, port = _Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        server = make_server(notify={"mail_to": ["ops@example.org"], "smtp_port": port},
                             alerts={"sasl_failures": 1})
        with httpx.Client(base_url=server.url) as client:
            web1.register(client)
            from mailagent.report import DeliverySection
            web1.post(client, web1.report(delivery=DeliverySection(sasl_auth_failures=3)))
            server.call(server.collector.evaluate_now)
            deadline = time.monotonic() + 30
            while not inbox.messages and time.monotonic() < deadline:
                time.sleep(0.05)
        envelope = inbox.messages[0]
        assert envelope.rcpt_tos == ["ops@example.org"]
        assert b"FIRING sasl_auth_failures on web1.example.org" in envelope.content
    finally:
        smtp.stop()


def test_notifier_retries_then_gives_up_and_counts_it(receiver):
    from mailagent.collector.notify import Notifier
    from mailagent.collector.settings import NotifySettings
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    notifier = Notifier(NotifySettings(webhook_url=dead, webhook_attempts=3,
                                       webhook_backoff_seconds=0.01))
    notifier.start()
    notifier.submit({"id": 1, "host": "h", "kind": "host_silent", "state": "firing"})
    notifier.stop(grace=30)
    assert (notifier.delivered, notifier.failed) == (0, 1)
