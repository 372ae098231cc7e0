"""The agent's commands, run as a user would: keygen, status, run (SIGTERM ends it cleanly)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mailagent import signing
from mailagent.cli import main
from tests.agent.collector_stub import StubCollector


def write_settings(tmp_path, settings, **extra) -> str:
    data = {"host": settings.host, "state_dir": str(settings.state_dir),
            "spool_dir": str(settings.spool_dir), "postfix_spool": str(settings.postfix_spool),
            "log_source": settings.log_source, "relay_settings_path": str(settings.relay_settings_path),
            "key_path": str(tmp_path / "agent.key"), **extra}
    path = tmp_path / "agent.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in data.items() if k != "checks")
                    + "[checks]\nqueue_detail = false\nrelay_reach = false\npostfix_health = false\n")
    return str(path)


def test_keygen_prints_public_key_and_keeps_existing(tmp_path, capsys):
    key = tmp_path / "k" / "agent.key"
    assert main(["keygen", "--key", str(key)]) == 0
    first = capsys.readouterr().out.strip()
    assert first == signing.public_key_text(signing.load_private_key(key))
    assert main(["keygen", "--key", str(key)]) == 0
    assert capsys.readouterr().out.strip() == first


def test_bad_settings_exit_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "agent.toml"
    path.write_text("interval_seconds = -5\nnope = 1\n")
    assert main(["status", "--settings", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert sorted(line.split(":")[0] for line in err) == ["interval_seconds", "nope"]


def test_run_once_then_status(tmp_path, settings, capsys):
    (tmp_path / "mail.log").write_text("")
    path = write_settings(tmp_path, settings)
    assert main(["status", "--settings", path]) == 1  # nothing yet
    assert main(["run", "--once", "--settings", path]) == 0
    capsys.readouterr()
    assert main(["status", "--settings", path]) == 0
    text = capsys.readouterr().out
    assert "deferred 5" in text and "hold 2" in text
    assert main(["status", "--json", "--settings", path]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"]["queue"]["counts"]["deferred"] == 5


@pytest.mark.timeout(60)
def test_run_reports_then_sigterm_exits_0(tmp_path, settings):
    (tmp_path / "mail.log").write_text("")
    key = signing.generate_key(tmp_path / "agent.key")
    with StubCollector({settings.host: signing.public_key_text(key)}) as collector:
        path = write_settings(tmp_path, settings, collector_url=collector.url, interval_seconds=1)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "mailagent", "run", "--settings", path],
                                env=env, stderr=subprocess.PIPE)
        try:
            while len(collector.accepted) < 2 and proc.poll() is None:
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, proc.stderr.read().decode()
        finally:
            proc.kill()
            proc.wait()
            proc.stderr.close()
        assert len(collector.accepted) >= 2
        assert all(r.host == settings.host and r.queue.counts.deferred == 5 for r in collector.accepted)
        assert not list((tmp_path / "state" / "spool").glob("*.report"))


@pytest.mark.timeout(60)
def test_service_entry_point_has_only_the_agent_commands(tmp_path):
    """The unit runs `python -m mailagent.agent`; it must work without the other areas."""
    keygen = subprocess.run([sys.executable, "-m", "mailagent.agent", "keygen", "--key",
                             str(tmp_path / "k.key")], capture_output=True, text=True)
    assert keygen.returncode == 0 and len(keygen.stdout.strip()) == 44
    usage = subprocess.run([sys.executable, "-m", "mailagent.agent"], capture_output=True, text=True)
    assert usage.returncode == 2 and "run" in usage.stderr and "render" not in usage.stderr


@pytest.mark.timeout(60)
def test_collector_down_reports_spool_and_sigterm_still_exits_0(tmp_path, settings):
    import socket
    from mailagent.report import Report
    (tmp_path / "mail.log").write_text("")
    signing.generate_key(tmp_path / "agent.key")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    path = write_settings(tmp_path, settings, collector_url=f"http://127.0.0.1:{closed}",
                          interval_seconds=1)
    spool = tmp_path / "state" / "spool"
    proc = subprocess.Popen([sys.executable, "-m", "mailagent.agent", "run", "--settings", path],
                            stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and len(list(spool.glob("*.report")) if spool.exists() else []) < 2:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
    reports = [Report.from_wire(p.read_bytes()) for p in sorted(spool.glob("*.report"))]
    assert len(reports) >= 2 and all(r.queue.counts.deferred == 5 for r in reports)
    assert reports[-1].spool.pending >= 1  # the report itself says what waits
