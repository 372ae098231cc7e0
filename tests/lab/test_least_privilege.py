"""On a real VM, the agent holds no capability and cannot read the host's secrets, and still
reports the right queue counts: the queue counter (mailagent-queue-count) holds the one
capability there is, without a network.

Runs on the shared deployed lab (conftest `deployed`); relay1 reports every 10 s there.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from mailagent.lab import sink, ssh
from mailagent.lab.mail import flush, send_mail, wait_deferred, wait_received
from tests.lab.helpers import restart_sink, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]

HOST = "relay1"
SECRETS = ("/etc/shadow", "/etc/postfix/sasl_passwd")
CAP_DAC_READ_SEARCH = 1 << 2
POSTFIX_CHECKS = {"queue_counts", "queue_detail", "postfix_health", "log_stats"}
# What decides which files a process may open: taken from the deployed agent unit.
ACCESS_PROPERTIES = ("User", "Group", "SupplementaryGroups", "NoNewPrivileges", "AmbientCapabilities",
                     "CapabilityBoundingSet", "ProtectSystem", "ProtectHome", "PrivateTmp",
                     "PrivateDevices", "RestrictSUIDSGID")


def run(state, command: str, host: str = HOST, timeout: float = 120) -> tuple[int, str, str]:
    return ssh.run(state, host, command, timeout=timeout)


def root(state, command: str, host: str = HOST) -> str:
    rc, out, err = run(state, command, host)
    assert rc == 0, f"{host}: {command}: {out}{err}"
    return out


def as_agent(state, command: str, host: str = HOST) -> tuple[int, str, str]:
    """`command` in a transient unit with the agent unit's identity, groups, capabilities and
    file-system protections (systemd-run, so systemd applies them exactly as for the agent)."""
    unit = root(state, "systemctl cat mailagent.service", host)
    props = [line for line in unit.splitlines()
             if line.partition("=")[0] in ACCESS_PROPERTIES and line.partition("=")[2].strip()]
    options = " ".join(f"-p '{p}'" for p in props)
    return run(state, f"systemd-run --quiet --wait --pipe --collect {options} -- {command}", host)


def capabilities(state, unit: str, host: str = HOST) -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of the unit's main process."""
    pid = root(state, f"systemctl show -p MainPID --value {unit}", host).strip()
    assert pid not in ("", "0"), f"{unit} is not running on {host}"
    status = root(state, f"cat /proc/{pid}/status", host)
    return {k: int(v, 16) for k, _, v in (ln.partition(":\t") for ln in status.splitlines())
            if k.startswith("Cap")}


def agent_report(state) -> dict:
    rc, out, err = run(state, "mailagent status --json")
    assert rc == 0, out + err
    return json.loads(out)["report"] or {}


def collector_counts(state) -> dict | None:
    """relay1's queue counts as the collector's /api/v1/hosts shows them."""
    collector = state["collector"]
    response = httpx.get(collector["url"] + "/api/v1/hosts", verify=collector["ca_cert"], timeout=10)
    response.raise_for_status()
    return next((h["queue"] for h in response.json()["hosts"] if h["host"] == HOST), None)


def counts_of(report: dict) -> dict | None:
    return ((report.get("queue") or {}).get("counts")) if report else None


def queue_check(report: dict) -> dict:
    return next(c for c in report.get("checks", []) if c["name"] == "queue_counts")


def test_the_agent_holds_no_capability_and_the_counter_only_one(deployed):
    state, _, _ = deployed
    agent = capabilities(state, "mailagent.service")
    assert agent == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}, agent
    # The counter starts at the agent's first question, which has long been asked by now.
    counter = capabilities(state, "mailagent-queue-count.service")
    assert counter["CapEff"] == counter["CapPrm"] == counter["CapBnd"] == CAP_DAC_READ_SEARCH, counter
    # No network: a private namespace with nothing but loopback.
    pid = root(state, "systemctl show -p MainPID --value mailagent-queue-count.service").strip()
    links = root(state, f"nsenter -t {pid} -n ip -o link show")
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
    assert root(state, "stat -c '%U %G %a' /run/mailagent-queue-count.sock").split() == [
        "root", "mailagent", "660"]
    # What the agent reads of Postfix did not need the capability: those checks all pass.
    # (relay_reach is left out: without the sasl_passwd the agent must not read, it checks the
    # smarthost up to TLS only; it is printed, not asserted.)
    report = wait_for(lambda: agent_report(state),
                      lambda r: r and {c["name"] for c in r["checks"] if c["success"]} >= POSTFIX_CHECKS,
                      f"a report in which {sorted(POSTFIX_CHECKS)} pass", timeout=180)
    assert report["postfix"]["master_running"] is True
    print("relay_reach:", [c for c in report["checks"] if c["name"] == "relay_reach"])


def test_the_agent_cannot_read_the_hosts_secrets(deployed):
    state, _, _ = deployed
    password = state["sink"]["password"]
    assert password in root(state, "cat /etc/postfix/sasl_passwd")  # it is there to be read
    for path in SECRETS:
        root(state, f"test -s {path}")
        rc, out, err = as_agent(state, f"/bin/cat {path}")
        assert rc != 0 and "Permission denied" in err, (path, rc, out, err)
        assert password not in out
    # The same identity reaches what it is meant to: the queue listing and the journal.
    rc, out, err = as_agent(state, "/usr/sbin/postqueue -j")
    assert rc == 0, err
    rc, out, err = as_agent(state, "/usr/bin/journalctl -q -n 1 -u 'postfix*'")
    assert rc == 0 and out.strip(), err
    # A user outside the group mailagent cannot even ask the counter.
    rc, out, err = run(state, "setpriv --reuid=nobody --regid=nogroup --clear-groups "
                              "/opt/mailagent/venv/bin/python -c "
                              "'from mailagent.agent.queue_counter import ask; print(ask())'")
    assert rc != 0 and "PermissionError" in err, out + err


def test_the_secrets_are_hidden_from_the_counter_too(deployed):
    state, _, _ = deployed
    password = state["sink"]["password"]
    pid = root(state, "systemctl show -p MainPID --value mailagent-queue-count.service").strip()
    rc, out, err = run(state, f"nsenter -t {pid} -m cat /etc/postfix/sasl_passwd /etc/shadow")
    assert password not in out and "root:" not in out, out


def test_queue_counts_stay_right_without_the_capability(deployed):
    state, _, _ = deployed
    sink.stop(Path(state["lab_dir"]))
    try:
        ids = [send_mail(state, HOST, subject=f"least privilege {n}") for n in range(3)]
        deferred = wait_deferred(state, HOST, 3)
        assert len(deferred) >= 3, deferred
        for entry in deferred[:2]:
            root(state, f"postsuper -h {entry['queue_id']}")
        def expected(counts: dict | None) -> bool:
            return counts is not None and counts["hold"] == 2 and counts["deferred"] == len(deferred) - 2

        report = wait_for(lambda: agent_report(state), lambda r: expected(counts_of(r)),
                          "the agent to report 2 held and the rest deferred", timeout=180)
        assert queue_check(report)["success"], queue_check(report)
        wait_for(lambda: collector_counts(state), expected, "the collector to show the agent's counts",
                 timeout=180)

        # Whatever Postfix does to its folders, the counts stay right (no ACL to lose).
        since = float(root(state, "date +%s"))
        rc, out, err = run(state, "postfix set-permissions; systemctl restart postfix")
        print(f"postfix set-permissions + restart: rc={rc} {out[-500:]}{err[-500:]}")
        report = wait_for(lambda: agent_report(state),
                          lambda r: r and _at(r) > since + 1 and expected(counts_of(r)),
                          "a report after `postfix set-permissions` with the same counts", timeout=180)
        assert queue_check(report)["success"], queue_check(report)
    finally:
        run(state, "postsuper -H ALL")
        restart_sink(state)
    flush(state, HOST)
    assert all(wait_received(state, ids).values())
    wait_for(lambda: agent_report(state),
             lambda r: counts_of(r) is not None and sum(counts_of(r).values()) == 0,
             "the agent to report an empty queue", timeout=180)


def _at(report: dict) -> float:
    return datetime.fromisoformat(report["generated_at"].replace("Z", "+00:00")).timestamp()


def test_hub_agent_cannot_read_its_sasldb(deployed):
    state, _, _ = deployed
    if not any(h["name"] == "hub" for h in state["hosts"]):
        pytest.skip("no hub in this lab")
    paths = ["/etc/shadow"]
    if run(state, "test -s /etc/postfix/sasl/sasldb2", host="hub")[0] == 0:
        paths.append("/etc/postfix/sasl/sasldb2")
    if run(state, "systemctl cat mailagent.service", host="hub")[0] != 0:
        pytest.skip("no agent on the hub")
    for path in paths:
        rc, out, err = as_agent(state, f"/bin/cat {path}", host="hub")
        assert rc != 0 and "Permission denied" in err, (path, out, err)
