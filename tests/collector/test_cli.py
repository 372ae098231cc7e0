"""`mailagent collector ...` as users run it: exit codes, and a real HTTPS server process."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mailagent import pki

from .pgserver import free_port

MAILAGENT = [sys.executable, "-m", "mailagent"]
pytestmark = pytest.mark.timeout(120)


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*MAILAGENT, "collector", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_bad_settings_exit_2_with_one_line_per_problem(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('listen = "x"\n[alerts]\nsilent_intervals = -1\n')
    done = run("check-config", "--config", str(config))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    assert any("listen:" in line for line in lines)
    assert any("alerts.silent_intervals:" in line for line in lines)
    assert run("serve", "--listen", "nowhere").returncode == 2


def test_environment_reaches_the_settings():
    done = run("check-config", env={"MAILAGENT_COLLECTOR_ALERTS__DEFERRED_THRESHOLD": "7"})
    assert done.returncode == 0 and '"deferred_threshold": 7' in done.stdout


def test_unreachable_database_is_a_runtime_failure(tmp_path):
    port = free_port()  # nothing listens there
    done = run("serve", "--listen", f"127.0.0.1:{free_port()}", "--database",
               f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    assert done.returncode == 1
    assert "OperationalError" in done.stderr


def test_serve_over_tls_with_a_project_ca_certificate(tmp_path):
    ca_cert, _ = pki.create_ca(tmp_path / "ca", "test CA")
    cert, key = pki.issue_server_cert(tmp_path / "ca", ["localhost"], ["127.0.0.1"], tmp_path / "tls")
    port = free_port()
    env = {**os.environ, "MAILAGENT_COLLECTOR_TLS_CERT": str(cert),
           "MAILAGENT_COLLECTOR_TLS_KEY": str(key)}
    proc = subprocess.Popen([*MAILAGENT, "collector", "serve", "--listen", f"127.0.0.1:{port}",
                             "--database", f"sqlite:///{tmp_path}/c.db"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        context = ssl.create_default_context(cafile=str(ca_cert))
        answer = _wait_healthy(f"https://127.0.0.1:{port}/healthz", context)
        assert answer.json() == {"ok": True}
        with pytest.raises(httpx.ConnectError):  # a client without the project CA refuses it
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    # uvicorn re-raises SIGTERM after its clean shutdown; systemd counts that as success.
    assert proc.returncode in (0, -15), out
    assert "Application shutdown complete" in out
    assert Path(tmp_path / "c.db").exists()


def _wait_healthy(url: str, verify) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, verify=verify, timeout=5)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_fleet_summary_from_a_running_collector(server, client, web1):
    web1.register(client)
    web1.post(client, web1.report(deferred=5, oldest=600.0))
    done = subprocess.run([*MAILAGENT, "collector", "fleet", "--url", server.url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    header, row, total = done.stdout.strip().splitlines()
    assert header.split()[:2] == ["HOST", "LAST"]
    assert row.split()[0] == web1.name and "10m" in row and " 5 " in row
    assert total == "1 hosts, 0 alerts firing"
    unreachable = subprocess.run([*MAILAGENT, "collector", "fleet", "--url",
                                  f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True)
    assert unreachable.returncode == 1
