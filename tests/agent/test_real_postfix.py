"""Cross-check against a real Postfix: the agent's figures equal what `postqueue -j` says."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mailagent.agent.checks.log_stats import Check as LogStats
from mailagent.agent.checks.postfix_health import Check as PostfixHealth
from mailagent.agent.checks.queue_detail import Check as QueueDetail
from mailagent.agent.cycle import queue_section
from mailagent.agent.queue_scan import count_queues
from mailagent.agent.settings import AgentSettings
from mailagent.report import ReasonClass
from tests.agent.postfix_instance import PostfixInstance


@pytest.fixture(params=[True, False], ids=["long-ids", "short-ids"])
def postfix(request):
    # Not under pytest's tmp_path: that is 0700 root, and Postfix daemons run as `postfix`.
    root = Path(tempfile.mkdtemp(prefix="mailagent-pf-"))
    root.chmod(0o755)
    instance = PostfixInstance(root, long_ids=request.param)

    def cleanup():
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)
    request.addfinalizer(cleanup)
    return instance.start()


@pytest.mark.timeout(120)
def test_agent_matches_postqueue(postfix, tmp_path):
    settings = AgentSettings(host="agenttest", postfix_spool=postfix.spool,
                             postfix_config_dir=postfix.etc, log_source=str(postfix.maillog),
                             state_dir=tmp_path / "state", relay_settings_path=tmp_path / "none.json")
    log_stats = LogStats(settings)
    log_stats.run(0)
    log_stats.commit()  # start of the log: from here on
    for n in range(4):
        postfix.send([f"rcpt{n}@example.net"])
    postfix.send(["a@example.com", "b@example.com"])
    entries = postfix.wait_deferred(5)
    postfix.hold(entries[0]["queue_id"])

    listed = {q: sum(1 for e in postfix.postqueue_json() if e["queue_name"] == q)
              for q in ("maildrop", "incoming", "active", "deferred", "hold")}
    counts = count_queues(postfix.spool)
    assert counts.model_dump() == listed == {"maildrop": 0, "incoming": 0, "active": 0,
                                             "deferred": 4, "hold": 1}

    detail = QueueDetail(settings).run(time.time())
    assert not detail.partial and detail.messages == 5
    section = queue_section(counts, detail, time.time(), 10)
    assert section.deferred_by_reason[ReasonClass.connection_refused] >= 4
    assert section.oldest_age_seconds < 120
    assert {d.destination for d in section.top_destinations} == {"example.net", "example.com"}

    delivery = log_stats.run(time.time())
    assert delivery.deferred >= 6 and delivery.sent == 0

    health = PostfixHealth(settings).run(time.time())
    assert health.master_running and health.check_ok
    assert health.relay_actual == "[127.0.0.1]:9"


COUNT_AS_AGENT = ("from mailagent.agent.queue_scan import count_queues; "
                  "import sys; print(count_queues(sys.argv[1]).deferred)")


def as_unprivileged(argv: list[str], with_capability: bool) -> subprocess.CompletedProcess:
    """Run as `nobody` the way the systemd unit runs the agent (NoNewPrivileges, one capability)."""
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"] if with_capability else []
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *caps,
                           "--no-new-privs", *argv], capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(120)
def test_least_privilege_is_enough_and_needed(postfix):
    postfix.send(["x@example.net"])
    postfix.wait_deferred(1)
    scan = [sys.executable, "-c", COUNT_AS_AGENT, str(postfix.spool)]
    queue = ["postqueue", "-c", str(postfix.etc), "-j"]
    assert as_unprivileged(scan, True).stdout.strip() == "1"
    assert '"queue_name": "deferred"' in as_unprivileged(queue, True).stdout
    # Without CAP_DAC_READ_SEARCH neither works: the capability is what the unit must grant.
    assert "PermissionError" in as_unprivileged(scan, False).stderr
    assert "Permission denied" in as_unprivileged(queue, False).stderr
