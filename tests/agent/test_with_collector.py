"""The agent against the real collector (FastAPI under uvicorn on 127.0.0.1, SQLite)."""

from __future__ import annotations

import io
import time

import httpx
import pytest

from mailagent import signing
from mailagent.agent.service import Agent
from mailagent.cli import main
from mailagent.collector.settings import CollectorSettings
from tests.agent.test_cli import write_settings
from tests.collector.conftest import LiveServer
from tests.collector.pgserver import free_port

TOKEN = "agent-test-registration-token-0123456789"
ADMIN = "agent-test-admin-token-0123456789abcdef"


@pytest.fixture()
def collector(tmp_path):
    server = LiveServer(CollectorSettings(
        listen=f"127.0.0.1:{free_port()}", registration_token=TOKEN, admin_token=ADMIN,
        public_read=True,
        database_url=f"sqlite:///{tmp_path}/collector.db", evaluate_interval_seconds=3600,
        maintenance_interval_seconds=3600)).start()
    yield server
    server.stop()


def wait_for_host(url: str, host: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hosts = httpx.get(f"{url}/api/v1/hosts", timeout=10).json()["hosts"]
        found = [h for h in hosts if h["host"] == host and h["queue"]]
        if found:
            return found[0]
        time.sleep(0.2)
    raise TimeoutError(f"{host} never reported")


@pytest.mark.timeout(90)
def test_register_then_report_reaches_the_fleet_view(collector, tmp_path, settings, monkeypatch, capsys):
    (tmp_path / "mail.log").write_text("")
    signing.generate_key(tmp_path / "agent.key")
    path = write_settings(tmp_path, settings, collector_url=collector.url)
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert main(["register", "--settings", path]) == 0
    assert "registered web1.example.org" in capsys.readouterr().out

    from mailagent.agent.settings import load_settings
    agent = Agent(load_settings(path, {}))
    agent.cycle()
    assert agent.spool.count() == 0
    seen = wait_for_host(collector.url, "web1.example.org")
    assert seen["queue"]["deferred"] == 5 and seen["queue"]["hold"] == 2


@pytest.mark.timeout(90)
def test_unregistered_or_impostor_reports_stay_spooled(collector, tmp_path, settings, monkeypatch):
    (tmp_path / "mail.log").write_text("")
    signing.generate_key(tmp_path / "agent.key")
    path = write_settings(tmp_path, settings, collector_url=collector.url)
    from mailagent.agent.settings import load_settings
    agent = Agent(load_settings(path, {}))
    agent.cycle()  # not registered yet: refused, kept
    assert agent.spool.count() == 1

    # Someone else registers the name first with their own key: ours is still refused.
    impostor = signing.generate_key(tmp_path / "impostor.key")
    httpx.post(f"{collector.url}/api/v1/hosts/register", headers={"Authorization": f"Bearer {TOKEN}"},
               json={"host": settings.host, "public_key": signing.public_key_text(impostor)}, timeout=10)
    agent.reporter.backoff.succeeded()
    agent.cycle()
    assert agent.spool.count() == 2
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert main(["register", "--settings", path]) == 1  # a different key: not with this token
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert main(["register", "--settings", path, "--replace"]) == 1  # nor with --replace

    monkeypatch.setattr("sys.stdin", io.StringIO(ADMIN + "\n"))
    assert main(["register", "--settings", path, "--replace"]) == 0
    agent.reporter.backoff.succeeded()
    agent.cycle()  # the two spooled reports and this one, re-signed, oldest first
    assert agent.spool.count() == 0
    assert wait_for_host(collector.url, settings.host)["queue"]["deferred"] == 5


@pytest.mark.timeout(90)
def test_a_rebuilt_host_is_re_registered_with_the_deploys_admin_token(collector, tmp_path, settings,
                                                                     monkeypatch, capsys):
    """What the deploy does: registration token, then the admin token, on stdin."""
    (tmp_path / "mail.log").write_text("")
    path = write_settings(tmp_path, settings, collector_url=collector.url)
    signing.generate_key(tmp_path / "agent.key")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{TOKEN}\n{ADMIN}\n"))
    assert main(["register", "--settings", path]) == 0
    assert "registered web1.example.org" in capsys.readouterr().out
    signing.generate_key(tmp_path / "agent.key")  # the host rebuilt: a new key
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{TOKEN}\n"))
    assert main(["register", "--settings", path]) == 1  # the registration token alone cannot
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{TOKEN}\n{ADMIN}\n"))
    assert main(["register", "--settings", path]) == 0
    assert capsys.readouterr().out.strip().endswith("web1.example.org: registered key replaced (host rebuilt)")
    from mailagent.agent.settings import load_settings
    agent = Agent(load_settings(path, {}))
    agent.cycle()  # the new key's reports are accepted
    assert agent.spool.count() == 0
