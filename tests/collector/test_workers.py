"""`workers` > 1: several server processes on one port and one SQLite file still raise and
notify each alert once (one of them holds the leader lock)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import TOKEN, HostIdentity
from .pgserver import free_port
from .test_alert_lifecycle import Receiver

pytestmark = pytest.mark.timeout(180)


def test_two_workers_notify_each_alert_once(tmp_path):
    hook = Receiver()
    port = free_port()
    env = {**os.environ, "MAILAGENT_COLLECTOR_WORKERS": "2",
           "MAILAGENT_COLLECTOR_REGISTRATION_TOKEN": TOKEN,
           "MAILAGENT_COLLECTOR_EVALUATE_INTERVAL_SECONDS": "0.3",
           "MAILAGENT_COLLECTOR_ALERTS__OLDEST_AGE_SECONDS": "60",
           "MAILAGENT_COLLECTOR_NOTIFY__WEBHOOK_URL": hook.url}
    proc = subprocess.Popen([sys.executable, "-m", "mailagent", "collector", "serve", "--listen",
                             f"127.0.0.1:{port}", "--database", f"sqlite:///{tmp_path}/c.db"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url)
        hosts = [HostIdentity(f"web{i}.example.org", tmp_path) for i in range(4)]
        with httpx.Client(base_url=url) as client:
            for host in hosts:  # spread over both workers by the kernel
                assert host.register(client).status_code == 200
                assert host.post(client, host.report(oldest=3600.0)).status_code == 200
        received = hook.wait_for(len(hosts))
        time.sleep(1.5)  # several more evaluation passes in both workers
        assert sorted(c["host"] for c in hook.received) == sorted(h.name for h in hosts)
        assert {c["kind"] for c in received} == {"oldest_message"}
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0]
        hook.close()
    assert out.count("Started server process") == 2, out
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] == len(hosts)


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("collector did not start")
        time.sleep(0.2)
