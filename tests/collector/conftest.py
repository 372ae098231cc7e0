"""Collector test fixtures: real uvicorn servers on loopback, SQLite files and a real
PostgreSQL server started for the session, and host identities with real Ed25519 keys."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import uvicorn

from mailagent import signing
from mailagent.collector import migrate
from mailagent.collector.app import create_app
from mailagent.collector.db import make_engine
from mailagent.collector.settings import CollectorSettings
from mailagent.report import (CheckResult, DeliverySection, QueueCounts, QueueSection, Report,
                              SpoolSection)

from .pgserver import TempPostgres, free_port

TOKEN = "test-registration-token-0123"
ADMIN = "test-admin-token-0123456789"
READ = "test-read-token-01234567890"
JSON = {"Content-Type": "application/json"}


class LiveServer:
    """The collector app under a real uvicorn server in a thread, on a free loopback port."""

    def __init__(self, settings: CollectorSettings):
        self.settings = settings
        self.app = create_app(settings)
        host, port = settings.listen_address()
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port,
                                                    log_level="warning", access_log=False))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("collector did not start")
            time.sleep(0.02)
        return self

    @property
    def collector(self):
        return self.app.state.collector

    def call(self, method):
        """Run one of the collector's coroutine methods on the server's loop."""
        return asyncio.run_coroutine_threadsafe(method(), self.loop).result(60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class HostIdentity:
    """A fleet host as the collector sees it: a name and a real key pair."""

    def __init__(self, name: str, folder: Path):
        self.name = name
        self.key = signing.generate_key(folder / f"{name}.key")
        self.public_key = signing.public_key_text(self.key)

    def register(self, client: httpx.Client, token: str = TOKEN, **extra) -> httpx.Response:
        return client.post("/api/v1/hosts/register", headers={"Authorization": f"Bearer {token}"},
                           json={"host": self.name, "public_key": self.public_key, **extra})

    def report(self, deferred: int = 0, oldest: float | None = None, **sections) -> Report:
        now = datetime.now(timezone.utc)
        base = dict(host=self.name, agent_version="0.1.0", generated_at=now, interval_seconds=60,
                    checks=[CheckResult(name="queue_counts", success=True, duration_seconds=0.01)],
                    queue=QueueSection(counts=QueueCounts(deferred=deferred),
                                       oldest_age_seconds=oldest),
                    delivery=DeliverySection(sent=3),
                    spool=SpoolSection(pending=0, dropped_total=0))
        base.update(sections)
        return Report(**base)

    def post(self, client: httpx.Client, report: Report | None = None, body: bytes | None = None,
             **sign) -> httpx.Response:
        body = body if body is not None else (report or self.report()).to_wire()
        headers = signing.sign_request(self.key, self.name, body, **sign)
        return client.post("/api/v1/reports", content=body, headers={**headers, **JSON})

    def signed(self, client: httpx.Client, path: str, payload: dict, key=None,
               **sign) -> httpx.Response:
        """POST `payload` to `path` signed with this host's key (or `key`), no token."""
        body = json.dumps(payload).encode()
        headers = signing.sign_request(key or self.key, self.name, body, **sign)
        return client.post(path, content=body, headers={**headers, **JSON})


@pytest.fixture(scope="session")
def postgres():
    server = TempPostgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/collector.db"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def make_server(tmp_path):
    servers: list[LiveServer] = []

    def start(database_url: str | None = None, **settings) -> LiveServer:
        # public_read: most tests are about other things; test_auth starts servers without it.
        base = dict(listen=f"127.0.0.1:{free_port()}", registration_token=TOKEN,
                    admin_token=ADMIN, public_read=True,
                    database_url=database_url or f"sqlite:///{tmp_path}/collector.db",
                    evaluate_interval_seconds=3600, maintenance_interval_seconds=3600)
        server = LiveServer(CollectorSettings(**{**base, **settings})).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server, database_url) -> LiveServer:
    return make_server(database_url)


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def web1(tmp_path) -> HostIdentity:
    return HostIdentity("web1.example.org", tmp_path)


@pytest.fixture
def web2(tmp_path) -> HostIdentity:
    return HostIdentity("web2.example.org", tmp_path)


@pytest.fixture
def engine(database_url):
    """A migrated engine on `database_url` (SQLite or the test PostgreSQL), disposed afterwards."""
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
