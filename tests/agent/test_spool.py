"""The spool: bounded, oldest dropped first and counted, and whole after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from mailagent.agent.spool import Spool


def test_put_and_order(tmp_path):
    spool = Spool(tmp_path, 10)
    ids = [uuid.uuid4() for _ in range(3)]
    for n, rid in enumerate(ids):
        spool.put(rid, json.dumps({"n": n}).encode())
    assert [json.loads(p.read_bytes())["n"] for p in spool.pending()] == [0, 1, 2]
    assert [p.name.split("-", 1)[1].removesuffix(".report") for p in spool.pending()] == list(map(str, ids))


def test_bound_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path, 3)
    for n in range(5):
        spool.put(uuid.uuid4(), json.dumps({"n": n}).encode())
    assert [json.loads(p.read_bytes())["n"] for p in spool.pending()] == [2, 3, 4]
    assert spool.dropped_total() == 2
    assert Spool(tmp_path, 3).dropped_total() == 2  # survives a restart


WRITER = """
import sys, uuid, json
from mailagent.agent.spool import Spool
spool = Spool(sys.argv[1], 100000)
n = 0
while True:
    spool.put(uuid.uuid4(), json.dumps({"n": n, "pad": "x" * 4000}).encode())
    n += 1
    if n == 20:
        print("ready", flush=True)
"""


@pytest.mark.timeout(60)
def test_writer_killed_mid_run_leaves_only_whole_reports(tmp_path):
    folder = tmp_path / "spool"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    spool = Spool(folder, 100000)
    pending = spool.pending()
    numbers = [json.loads(p.read_bytes())["n"] for p in pending]  # every file parses
    assert len(numbers) >= 20
    assert numbers == list(range(len(numbers)))  # in order, none missing
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 1  # at most the one being written; never listed as a report
