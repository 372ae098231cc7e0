"""What the end-to-end tests do to a running lab: deploy with pyinfra, send mail, watch the sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from mailagent.lab import sink, ssh

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def lab_inventory(state: dict, folder: Path, overrides: dict[str, dict] | None = None) -> Path:
    """An inventory file like inventories/lab.py, with some hosts' relay settings changed."""
    env = dict(os.environ, MAILAGENT_LAB_DIR=state["lab_dir"])
    listing = subprocess.run(
        [sys.executable, "-c", "import json, runpy; g = runpy.run_path('inventories/lab.py');"
         "print(json.dumps({k: v for k, v in g.items() if k in ('relays', 'hub')}))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    groups = json.loads(listing.stdout)
    for hosts in groups.values():
        for name, data in hosts:
            if name in (overrides or {}):
                data["relay"] = {**data["relay"], **overrides[name]}
    path = folder / f"inventory_{uuid.uuid4().hex[:8]}.py"
    path.write_text("".join(f"{group} = {[tuple(h) for h in hosts]!r}\n" for group, hosts in groups.items()))
    return path


def deploy(state: dict, folder: Path, overrides=None, args=(), deploy_file="deploy/site.py"):
    """Run pyinfra for real; returns the CompletedProcess (output in .stdout, both streams)."""
    inventory = lab_inventory(state, folder, overrides)
    command = [PYINFRA, "-y", str(inventory), deploy_file, *args]
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=1200,
                            env=dict(os.environ, MAILAGENT_LAB_DIR=state["lab_dir"]))
    print(result.stdout[-6000:])
    return result


def send_mail(state: dict, host: str, subject: str = "lab test") -> str:
    """Send one message from `host` with its own sendmail; returns its Message-ID."""
    message_id = f"<{uuid.uuid4().hex}@{host}.lab.mailagent.test>"
    text = (f"From: root@{host}\nTo: someone@example.com\nSubject: {subject}\n"
            f"Message-ID: {message_id}\n\nsent by the mailagent lab tests\n")
    command = f"printf %s {_quote(text)} | /usr/sbin/sendmail -i someone@example.com"
    rc, out, err = ssh.run(state, host, command, timeout=60)
    assert rc == 0, f"sendmail failed on {host}: {out}{err}"
    return message_id


def received(state: dict, message_id: str) -> list[dict]:
    return [m for m in sink.messages(Path(state["lab_dir"]))
            if (m.get("headers") or {}).get("Message-ID") == message_id]


def wait_received(state: dict, message_ids, timeout: float = 120) -> dict[str, list[dict]]:
    """Wait until every message arrived at the sink; returns the records per Message-ID."""
    deadline = time.monotonic() + timeout
    while True:
        found = {mid: received(state, mid) for mid in message_ids}
        if all(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(2)


def queue(state: dict, host: str) -> list[dict]:
    """The host's Postfix queue (postqueue -j), one record per message."""
    rc, out, err = ssh.run(state, host, "postqueue -j", timeout=60)
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_queued(state: dict, host: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        entries = queue(state, host)
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(2)


def flush(state: dict, host: str) -> None:
    rc, out, err = ssh.run(state, host, "postqueue -f", timeout=60)
    assert rc == 0, out + err


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
