"""Alerts to a real Prometheus Alertmanager (Debian's binary, started on loopback): firing,
re-posted, resolved, retried while it is down; credentials from 0600 files."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mailagent.collector.alertmanager import AlertmanagerSender, alertname, postable
from mailagent.collector.settings import NotifySettings, SettingsError, load_settings

from .amserver import Alertmanager
from .pgserver import free_port

pytestmark = pytest.mark.timeout(120)
PASSWORD = "am-password-not-for-logs"


@pytest.fixture
def make_am(tmp_path):
    started: list[Alertmanager] = []

    def make(**kw) -> Alertmanager:
        started.append(Alertmanager(tmp_path / f"am{len(started)}", **kw))
        return started[-1]
    yield make
    for am in started:
        am.stop()


def _secret(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "am-secret"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def _notify(am: Alertmanager, tmp_path, **extra) -> dict:
    settings = {"alertmanager_url": am.url, "alertmanager_repeat_seconds": 0.5,
                "external_url": "https://collector.example.org"}
    if am.ca_file:
        settings["alertmanager_ca_file"] = str(am.ca_file)
    if am.auth:
        settings.update(alertmanager_username=am.auth[0],
                        alertmanager_password_file=str(_secret(tmp_path, am.auth[1])))
    return {**settings, **extra}


def test_firing_then_resolved_in_a_real_alertmanager_over_tls_with_basic_auth(
        make_server, make_am, tmp_path, web1, caplog):
    am = make_am(tls=True, user="collector", password=PASSWORD).start()
    server = make_server(notify=_notify(am, tmp_path), alerts={"oldest_age_seconds": 600})
    labels = {"alertname": "MailagentOldestMessage", "host": web1.name}
    with httpx.Client(base_url=server.url) as client:
        web1.register(client)
        web1.post(client, web1.report(deferred=5, oldest=3600.0))
        server.call(server.collector.evaluate_now)
        [alert] = am.wait_for(bool, **labels)
        assert alert["status"]["state"] == "active"
        assert alert["labels"]["severity"] == "warning"
        assert alert["labels"]["source"] == "mailagent-collector"
        assert "3600 s" in alert["annotations"]["description"]
        assert alert["generatorURL"] == f"https://collector.example.org/hosts/{web1.name}"

        web1.post(client, web1.report(deferred=0, oldest=None))
        server.call(server.collector.evaluate_now)
        assert am.wait_for(lambda found: not found, **labels) == []
    sender = server.collector.notifier.alertmanager
    _until(lambda: sender.pending() == 0)  # its thread may not have read the answer yet
    assert sender.posts >= 2 and sender.failures == 0
    assert PASSWORD not in caplog.text


def test_firing_alerts_are_posted_again_while_they_fire(make_server, make_am, tmp_path, web1):
    am = make_am().start()
    server = make_server(notify=_notify(am, tmp_path), alerts={"oldest_age_seconds": 600})
    labels = {"alertname": "MailagentOldestMessage", "host": web1.name}
    with httpx.Client(base_url=server.url) as client:
        web1.register(client)
        web1.post(client, web1.report(oldest=3600.0))
        server.call(server.collector.evaluate_now)
        first = am.wait_for(bool, **labels)[0]["updatedAt"]
        time.sleep(0.6)  # past alertmanager_repeat_seconds
        assert server.call(server.collector.evaluate_now) == []  # no change, but a repeat is due
        again = am.wait_for(lambda found: found and found[0]["updatedAt"] > first, **labels)
    assert again and again[0]["startsAt"] == am.alerts(**labels)[0]["startsAt"]


def test_a_restarted_collector_posts_what_still_fires(make_server, make_am, tmp_path, web1):
    am = make_am().start()
    first = make_server(alerts={"oldest_age_seconds": 600})  # no Alertmanager configured yet
    with httpx.Client(base_url=first.url) as client:
        web1.register(client)
        web1.post(client, web1.report(oldest=3600.0))
        first.call(first.collector.evaluate_now)
    first.stop()
    second = make_server(notify=_notify(am, tmp_path), alerts={"oldest_age_seconds": 600})
    assert second.call(second.collector.evaluate_now) == []  # nothing new: read from the database
    assert am.wait_for(bool, alertname="MailagentOldestMessage", host=web1.name)


def test_alertmanager_down_is_retried_until_it_answers(make_am, tmp_path, caplog):
    am = make_am()  # not started: nothing listens on its port yet
    sender = AlertmanagerSender(NotifySettings(**_notify(am, tmp_path)))
    sender.start()
    try:
        with caplog.at_level(logging.WARNING, "mailagent.collector.alertmanager"):
            sender.submit(_change(1, "relay_unreachable", "firing"))
            _until(lambda: sender.failures >= 1)
            am.start()
            [alert] = am.wait_for(bool, alertname="MailagentRelayUnreachable")
        assert alert["labels"]["severity"] == "critical"
        assert sender.posts >= 1
        warnings = [r for r in caplog.records if r.name == "mailagent.collector.alertmanager"]
        assert warnings and all(r.exc_info is None for r in warnings)  # one line, no traceback
        assert "kept for the next attempt" in warnings[0].getMessage()
    finally:
        sender.stop()


class Recorder:
    """A stand-in answering the v2 endpoint, to see the request headers Alertmanager hides."""

    def __init__(self):
        self.posts: list[tuple[dict, list]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                recorder.posts.append((dict(self.headers), body))
                self.send_response(200 if self.path == "/api/v2/alerts" else 404)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_bearer_token_file_must_be_private_and_is_read_at_each_post(tmp_path, caplog):
    recorder = Recorder()
    token = _secret(tmp_path, "bearer-secret-123", mode=0o644)
    sender = AlertmanagerSender(NotifySettings(alertmanager_url=recorder.url,
                                               alertmanager_bearer_token_file=token,
                                               alertmanager_repeat_seconds=0.2))
    sender.start()
    try:
        sender.submit(_change(7, "host_silent", "firing"))
        _until(lambda: sender.failures >= 1)
        assert recorder.posts == []  # refused to use a world-readable secret
        assert "mode 0644" in caplog.text and "chmod 600" in caplog.text
        token.chmod(0o600)
        _until(lambda: recorder.posts)
        headers, body = recorder.posts[0]
        assert headers["Authorization"] == "Bearer bearer-secret-123"
        assert body[0]["labels"]["alertname"] == "MailagentHostSilent"
        sender.submit(_change(7, "host_silent", "resolved"))
        _until(lambda: sender.pending() == 0 and len(recorder.posts) >= 2)
        resolved = recorder.posts[-1][1]
        assert [a["endsAt"] for a in resolved] == ["2026-01-02T03:05:00.000Z"]
    finally:
        sender.stop()
        recorder.close()
    assert "bearer-secret-123" not in caplog.text


def test_a_resolved_alert_is_kept_until_alertmanager_takes_it(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    sender = AlertmanagerSender(NotifySettings(alertmanager_url=dead,
                                               alertmanager_repeat_seconds=0.1))
    sender.start()
    sender.submit(_change(3, "queue_deferred", "firing"))
    sender.submit(_change(3, "queue_deferred", "resolved"))
    _until(lambda: sender.failures >= 2)
    assert sender.pending() == 1
    sender.stop(grace=2)
    assert sender.pending() == 1  # said in the log at stop, never dropped in silence


def test_postable_follows_the_v2_schema():
    alert = postable(_change(1, "sasl_auth_failures", "resolved"), None)
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt"}
    assert alert["startsAt"] == "2026-01-02T03:04:05.000Z"
    assert alertname("queue_deferred") == "MailagentQueueDeferred"


@pytest.mark.parametrize("notify, problem", [
    ({"alertmanager_url": "http://am:9093", "alertmanager_username": "u"}, "given together"),
    ({"alertmanager_url": "http://u:p@am:9093"}, "no credentials in the URL"),
    ({"alertmanager_url": "am:9093"}, "expected http"),
    ({"alertmanager_url": "http://am:9093", "alertmanager_username": "u",
      "alertmanager_password_file": "/p", "alertmanager_bearer_token_file": "/t"}, "not both"),
])
def test_bad_alertmanager_settings_are_refused(notify, problem):
    with pytest.raises(SettingsError) as err:
        load_settings(environ={}, notify=notify)
    assert problem in str(err.value) and "notify" in str(err.value)


def _change(alert_id: int, kind: str, state: str) -> dict:
    return {"id": alert_id, "host": "web9.example.org", "kind": kind, "state": state,
            "started_at": "2026-01-02T03:04:05+00:00",
            "resolved_at": "2026-01-02T03:05:00+00:00" if state == "resolved" else None,
            "detail": "test"}


def _until(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
