"""Cross-check against a real Postfix: the agent's figures equal what `postqueue -j` says, and
the agent needs no capability to get them (the queue counter holds the one there is)."""

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
from mailagent.agent.checks.queue_counts import Check as QueueCounts
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
    with queue_counter(postfix, postfix.root / "run" / "counter.sock", unprivileged=False) as sock:
        assert QueueCounts(settings, counter=sock).run(time.time()) == counts

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
HEALTH_AS_AGENT = ("from mailagent.agent.checks.postfix_health import Check; "
                   "from mailagent.agent.settings import AgentSettings; import sys; "
                   "print(Check(AgentSettings(host='t', postfix_spool=sys.argv[1])).master_running())")
ASK_AS_AGENT = ("from mailagent.agent.queue_counter import ask; "
                "import sys; print(ask(sys.argv[1]).deferred)")
SECRET = "smarthost-password-s3cret"


def setpriv(argv: list[str], groups: tuple[str, ...] = (), capability: bool = False,
            gid: str = "nogroup") -> list[str]:
    """argv as `nobody` the way systemd runs a unit: NoNewPrivileges, these groups, no
    capability unless asked (then CAP_DAC_READ_SEARCH only, as the queue counter's unit)."""
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"] if capability else []
    group_args = [f"--groups={','.join(groups)}"] if groups else ["--clear-groups"]
    return ["setpriv", "--reuid=nobody", f"--regid={gid}", *group_args, *caps, "--no-new-privs", *argv]


def as_unprivileged(argv: list[str], **how) -> subprocess.CompletedProcess:
    return subprocess.run(setpriv(argv, **how), capture_output=True, text=True, timeout=60)


class queue_counter:
    """The queue counter on `sock` (as `nobody` with its one capability, unless told otherwise),
    its socket root:nogroup 0660 as systemd makes it root:mailagent 0660."""

    def __init__(self, postfix: PostfixInstance, sock: Path, unprivileged: bool = True):
        self.sock = sock
        argv = [sys.executable, "-m", "mailagent.agent.queue_counter", "--spool", str(postfix.spool),
                "--listen", str(sock)]
        self.argv = setpriv(argv, capability=True) if unprivileged else argv

    def __enter__(self) -> Path:
        self.sock.parent.mkdir(mode=0o755, exist_ok=True)
        shutil.chown(self.sock.parent, "nobody")
        self.process = subprocess.Popen(self.argv, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not self.sock.exists():
            assert self.process.poll() is None and time.monotonic() < deadline, self.process.stderr.read()
            time.sleep(0.05)
        shutil.chown(self.sock, "root", "nogroup")
        return self.sock

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()


@pytest.mark.timeout(120)
def test_least_privilege_is_enough_and_needed(postfix):
    postfix.send(["x@example.net"])
    postfix.wait_deferred(1)
    # Beside the queue (folders 0755 up to it): only the file's own mode keeps `nobody` out.
    secret = postfix.root / "sasl_passwd"
    secret.write_text(f"[smtp.example.com]:587 user:{SECRET}\n")
    secret.chmod(0o600)
    scan = [sys.executable, "-c", COUNT_AS_AGENT, str(postfix.spool)]
    queue = ["postqueue", "-c", str(postfix.etc), "-j"]
    read_secret = ["cat", str(secret)]
    agent = {"groups": ("postdrop",)}  # the agent's unit: no capability, postdrop (and journal)

    # The agent itself can neither read the queue folders nor a root-only secret ...
    assert "PermissionError" in as_unprivileged(scan, **agent).stderr
    denied = as_unprivileged(read_secret, **agent)
    assert denied.returncode != 0 and SECRET not in denied.stdout
    # ... which the capability would allow: that is why the agent must not hold it.
    assert SECRET in as_unprivileged(read_secret, capability=True).stdout
    # `postqueue -j` needs no capability, only the group postdrop (the showq socket in public/).
    assert '"queue_name": "deferred"' in as_unprivileged(queue, **agent).stdout
    assert "Permission denied" in as_unprivileged(queue).stderr

    # master.pid is root 0600; the unit's ExecStartPre=+ makes it 0644, and then the agent sees it.
    health = [sys.executable, "-c", HEALTH_AS_AGENT, str(postfix.spool)]
    assert "PermissionError" in as_unprivileged(health, **agent).stderr
    (postfix.spool / "pid" / "master.pid").chmod(0o644)
    assert as_unprivileged(health, **agent).stdout.strip() == "True"

    # The counts come from the queue counter, which alone holds the capability.
    with queue_counter(postfix, postfix.root / "run" / "counter.sock") as sock:
        ask = [sys.executable, "-c", ASK_AS_AGENT, str(sock)]
        assert as_unprivileged(ask, **agent).stdout.strip() == "1"
        # Only its socket's group may ask (systemd: SocketGroup=mailagent, SocketMode=0660).
        outsider = as_unprivileged(ask, gid="postdrop")
        assert "PermissionError" in outsider.stderr and outsider.stdout == ""
