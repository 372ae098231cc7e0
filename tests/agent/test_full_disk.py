"""A full spool filesystem (a 64 KiB tmpfs this test mounts, filled up) against the real collector:
the agent keeps cycling, says why, sends what it can from memory, and loses nothing spooled."""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import subprocess
import time

import httpx
import pytest

from mailagent import signing
from mailagent.agent.service import Agent
from mailagent.cli import main
from tests.agent.test_cli import write_settings
from tests.agent.test_with_collector import TOKEN, collector  # noqa: F401 (the fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def small_fs(tmp_path, request):
    """A 64 KiB tmpfs mounted at tmp_path/small, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a 64 KiB tmpfs to fill it: run it as root (CI does)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount)],
                   check=True, capture_output=True, timeout=30)
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(mount)], check=True, timeout=30))
    return mount


def fill(folder) -> None:
    """Write to `folder` until its filesystem says ENOSPC."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        while True:
            try:
                fh.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return


def stored(tmp_path, count: int) -> dict[str, dict]:
    """The reports the collector stored, by report_id, once there are `count` of them."""
    deadline = time.monotonic() + 30
    while True:
        with sqlite3.connect(tmp_path / "collector.db") as db:
            rows = db.execute("select id, body from reports").fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return {rid: json.loads(body) for rid, body in rows}
        time.sleep(0.2)


def temp_files(folder) -> list[str]:
    return [p.name for p in folder.rglob("*.tmp")]


@pytest.mark.parametrize("state_on_small_fs", [False, True], ids=["spool-full", "state-and-spool-full"])
def test_full_spool_keeps_the_agent_running_and_sends_from_memory(
        collector, small_fs, tmp_path, settings, caplog, capsys, state_on_small_fs):  # noqa: F811
    (tmp_path / "mail.log").write_text("")
    key = signing.generate_key(tmp_path / "agent.key")
    state = small_fs / "state" if state_on_small_fs else tmp_path / "state"
    path = write_settings(tmp_path, settings, collector_url=collector.url, state_dir=str(state),
                          spool_dir=str(small_fs / "spool"))
    from mailagent.agent.settings import load_settings
    agent = Agent(load_settings(path, {}))
    for _ in range(2):  # not registered yet: both reports refused and spooled
        agent.cycle()
        agent.reporter.backoff.succeeded()
    spooled = {p.name: p.read_bytes() for p in agent.spool.pending()}
    assert len(spooled) == 2

    fill(small_fs)
    caplog.set_level(logging.INFO, "mailagent.agent")
    full = []
    for _ in range(2):
        full.append(agent.cycle())
        agent.reporter.backoff.succeeded()
    assert {p.name: p.read_bytes() for p in agent.spool.pending()} == spooled  # whole, untouched
    assert temp_files(small_fs) == []  # the failed writes left nothing behind
    for report in full:
        failed = [c for c in report.checks if c.name == "spool"]
        assert len(failed) == 1 and not failed[0].success and "No space left" in failed[0].error
    assert len(agent.unspooled) == 2
    assert 'mailagent_check_success{check="spool"} 0' in agent.metrics_text
    spool_lines = [r for r in caplog.records if r.getMessage().startswith("spool:")]
    assert len(spool_lines) == 1 and "No space left on device" in spool_lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)  # one line per problem, no traceback
    if not state_on_small_fs:  # where the status can still be written, it says so
        assert main(["status", "--settings", path]) == 0
        text = capsys.readouterr().out
        assert "2 spooled, 2 held in memory" in text and "spool      FAILED OSError" in text

    httpx.post(f"{collector.url}/api/v1/hosts/register", headers={"Authorization": f"Bearer {TOKEN}"},
               json={"host": settings.host, "public_key": signing.public_key_text(key)}, timeout=10)
    agent.reporter.backoff.succeeded()
    last = agent.cycle()  # the disk is still full: the spooled two, then the held two and this one
    assert agent.spool.count() == 0 and agent.unspooled == []
    bodies = stored(tmp_path, 5)
    assert set(bodies) == {json.loads(b)["report_id"] for b in spooled.values()} | {
        str(r.report_id) for r in full + [last]}
    from_memory = {rid for rid, b in bodies.items() if any(c["name"] == "spool" for c in b["checks"])}
    assert from_memory == {str(r.report_id) for r in full + [last]}
