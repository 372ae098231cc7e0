"""deploy/send_test.py on @fake hosts whose `mailagent send-test --json` answers are canned:
one line per host on the control machine, and the exit code says whether every host delivered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
DELIVERED = {"result": "delivered", "reply": "250 2.0.0 OK queued as 9F2C41D07A3B",
             "tls": {"trust": "Verified", "protocol": "TLSv1.3"}, "auth_user": "lab"}
DEFERRED = {"result": "deferred", "reply": "535 5.7.8 Authentication credentials invalid",
            "hint": "wrong credentials: the smarthost refused the user name or password"}


def run(tmp_path, answers: dict, *data: str) -> subprocess.CompletedProcess:
    hosts = [(f"@fake/{name}", {"fake_delay": 0, "fake_delay_jitter": 0,
                                "fake_responses": {"send-test": answer}}) for name, answer in answers.items()]
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"relays = {hosts!r}\n")
    return subprocess.run([PYINFRA, "-y", str(inventory), "deploy/send_test.py", *data], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)


def host_lines(output: str, name: str) -> list[str]:
    return [line.strip() for line in output.splitlines()
            if line.strip().startswith(f"[@fake/{name}] ") and "Connected" not in line
            and "Ready:" not in line and "Success" not in line and "Error: executed" not in line]


def test_one_line_per_host_and_non_zero_when_one_did_not_deliver(tmp_path):
    done = run(tmp_path, {"r1": json.dumps(DELIVERED),
                          "r2": {"stdout": json.dumps(DEFERRED), "success": False},
                          "r3": {"stderr": "sh: 1: /usr/local/bin/mailagent: not found", "success": False}},
               "--data", "to=ops@example.com")
    assert done.returncode != 0, done.stdout
    assert host_lines(done.stdout, "r1") == [
        "[@fake/r1] delivered: 250 2.0.0 OK queued as 9F2C41D07A3B (Verified TLS TLSv1.3, AUTH lab)"]
    assert host_lines(done.stdout, "r2") == [
        "[@fake/r2] deferred: 535 5.7.8 Authentication credentials invalid; hint: wrong credentials: "
        "the smarthost refused the user name or password"]
    assert host_lines(done.stdout, "r3") == ["[@fake/r3] sh: 1: /usr/local/bin/mailagent: not found"]


def test_all_delivered_exits_0(tmp_path):
    done = run(tmp_path, {"r1": json.dumps(DELIVERED), "r2": json.dumps(DELIVERED)},
               "--data", "to=ops@example.com", "--data", "from=app@example.org")
    assert done.returncode == 0, done.stdout
    assert "--from app@example.org" not in done.stdout  # the command line stays out of the output
    assert len(host_lines(done.stdout, "r1") + host_lines(done.stdout, "r2")) == 2


def test_missing_or_bad_address_stops_before_any_mail(tmp_path):
    done = run(tmp_path, {"r1": json.dumps(DELIVERED)})
    assert done.returncode != 0 and "--data to=ADDR is required" in done.stdout
    done = run(tmp_path, {"r1": json.dumps(DELIVERED)}, "--data", "to=ops")
    assert done.returncode != 0 and "'ops' is not an address" in done.stdout
    assert "Starting operation" not in done.stdout
