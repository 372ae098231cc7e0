"""Mail in the lab: send from a VM with its own sendmail, find it at the sink, read a VM's queue."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from mailagent.lab import sink, ssh


def send_mail(state: dict, host: str, subject: str = "lab test", to: str = "someone@example.com") -> str:
    """Send one message from `host` with its own sendmail; returns its Message-ID."""
    message_id = f"<{uuid.uuid4().hex}@{host}.lab.mailagent.test>"
    text = (f"From: root@{host}\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: {message_id}\n\nsent through the mailagent lab\n")
    rc, out, err = ssh.run(state, host, f"printf %s {_quote(text)} | /usr/sbin/sendmail -i {to}",
                           timeout=60)
    if rc != 0:
        raise RuntimeError(f"sendmail failed on {host}: {out}{err}")
    return message_id


def received(state: dict, message_id: str) -> list[dict]:
    """The sink's records of one message (more than one means it arrived twice)."""
    return [m for m in sink.messages(Path(state["lab_dir"]))
            if (m.get("headers") or {}).get("message_id") == message_id]


def wait_received(state: dict, message_ids, timeout: float = 120) -> dict[str, list[dict]]:
    """Wait until every message reached the sink (or the timeout); the records per Message-ID."""
    deadline = time.monotonic() + timeout
    while True:
        found = {mid: received(state, mid) for mid in message_ids}
        if all(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def queue(state: dict, host: str) -> list[dict]:
    """The VM's Postfix queue as `postqueue -j` records."""
    rc, out, err = ssh.run(state, host, "postqueue -j", timeout=60)
    if rc != 0:
        raise RuntimeError(f"postqueue -j failed on {host}: {err}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_deferred(state: dict, host: str, count: int, timeout: float = 90) -> list[dict]:
    """Wait until at least `count` messages sit in the VM's deferred queue; returns those."""
    deadline = time.monotonic() + timeout
    while True:
        deferred = [e for e in queue(state, host) if e.get("queue_name") == "deferred"]
        if len(deferred) >= count or time.monotonic() > deadline:
            return deferred
        time.sleep(2)


def delay_reasons(entries: list[dict]) -> str:
    return " | ".join(r.get("delay_reason", "") for e in entries for r in e.get("recipients", []))


def flush(state: dict, host: str, timeout: float = 90) -> None:
    """Ask the VM's Postfix to retry its queue now (waiting for Postfix to be up after a boot)."""
    deadline = time.monotonic() + timeout
    while True:
        rc, out, err = ssh.run(state, host, "postqueue -f", timeout=60)
        if rc == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"postqueue -f failed on {host}: {out}{err}")
        time.sleep(2)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
