"""`mailagent send-test` on the session lab's deployed relays, against the real sink in its modes,
and deploy/send_test.py over the lab inventory. No VM of its own, no redeploy: the sink's mode
is switched and always put back to normal, and the mail a failing mode leaves queued is dropped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from mailagent.lab import sink, ssh
from mailagent.lab.mail import received
from mailagent.relay.check import HINTS
from tests.lab.helpers import PYINFRA, ROOT, lab_inventory

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]
TO = "someone@example.com"


def send_test(state: dict, host: str, timeout: int = 60) -> tuple[int, dict]:
    rc, out, err = ssh.run(state, host, f"mailagent send-test --json --to {TO} --timeout {timeout}",
                           timeout=timeout + 60)
    assert out.strip(), f"{host}: rc {rc}: {err}"
    result = json.loads(out)
    print(f"{host}: rc {rc}: the log lines it followed:", *result["log"], sep="\n  ")
    return rc, result


@pytest.fixture()
def sink_mode(deployed):
    """Switch the sink's mode; afterwards: normal again, the test's queued mail dropped, and the
    relay's Postfix told to retry (which also revives a destination it marked dead)."""
    state = deployed[0]
    leftovers: list[tuple[str, str]] = []

    def switch(mode: str) -> list[tuple[str, str]]:
        sink.set_mode(Path(state["lab_dir"]), mode)
        return leftovers

    yield switch
    sink.set_mode(Path(state["lab_dir"]), "normal")
    for host, queue_id in leftovers:
        ssh.run(state, host, f"postsuper -d {queue_id}; postqueue -f", timeout=60)


def test_delivered_with_the_sinks_own_queue_id_over_tls(deployed):
    state = deployed[0]
    rc, result = send_test(state, "relay1")
    assert (rc, result["result"]) == (0, "delivered"), result
    records = received(state, result["message_id"])
    assert [r["id"] for r in records] == [result["smarthost_queue_id"]]
    assert result["reply"] == f"250 2.0.0 OK queued as {records[0]['id']}"
    assert records[0]["tls"] and records[0]["auth_user"] == result["auth_user"] == state["sink"]["username"]
    assert result["tls"]["trust"] == "Verified" and result["tls"]["protocol"].startswith("TLSv1.")
    assert result["relay"].endswith(":2587")  # relay1's STARTTLS port in the lab inventory


def test_refused_login_is_deferred_with_535_and_the_credentials_hint(deployed, sink_mode):
    state = deployed[0]
    leftovers = sink_mode("reject-auth")
    rc, result = send_test(state, "relay1")
    leftovers.append(("relay1", result["queue_id"]))
    assert (rc, result["result"], result["code"]) == (1, "deferred", 535), result
    assert result["hint"] == dict(HINTS)["535"]
    assert result["reason_class"] == "auth_failed"


def test_tempfail_is_deferred_with_the_4xx(deployed, sink_mode):
    state = deployed[0]
    leftovers = sink_mode("tempfail")
    rc, result = send_test(state, "relay2")
    leftovers.append(("relay2", result["queue_id"]))
    assert (rc, result["result"]) == (1, "deferred"), result
    assert 400 <= result["code"] < 500 and result["reply"].startswith("451 4.7.1")
    assert result["hint"] == dict(HINTS)["451"]


def test_fleet_deploy_prints_one_line_per_host(deployed):
    state, folder, _ = deployed
    inventory = lab_inventory(state, folder)
    done = subprocess.run([PYINFRA, "-y", str(inventory), "deploy/send_test.py", "--data", f"to={TO}"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600, env=dict(os.environ, MAILAGENT_LAB_DIR=state["lab_dir"]))
    print(done.stdout[-4000:])
    assert done.returncode == 0
    hosts = [entry["name"] for entry in state["hosts"]]  # relays and the hub
    # pyinfra pads the prefix: "[hub]    delivered: ...".
    lines = {host: [line for line in done.stdout.splitlines()
                    if re.match(rf"\s*\[{host}\]\s+delivered: ", line)] for host in hosts}
    assert all(len(found) == 1 for found in lines.values()), lines
    assert all("250 2.0.0 OK queued as" in found[0] for found in lines.values())
