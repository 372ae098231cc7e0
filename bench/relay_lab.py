"""The lab side of bench/relay_throughput.py: a one-VM lab, deploys with overrides, guest commands.

The benchmark's own lab has no collector, and its sink listens on free loopback ports rather
than the fixed 2525/2587/2465, so it can run beside another engineer's lab (guests reach any
host loopback port through QEMU's gateway address).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from mailagent.lab import sink, ssh, vm
from mailagent.lab import state as lab_state
from tests.lab.helpers import lab_inventory

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
APP_PATH = "/usr/local/lib/mailagent-bench/relay_app.py"


def own_lab(folder: Path, progress: Callable[[str], None]) -> dict:
    """Boot 1 relay VM (no collector) and start the sink on free ports; returns the lab state.

    vm.up stops what it started when it fails; the sink is recorded in the state before anything
    else can fail, so `vm.down(folder)` stops it too.
    """
    state = vm.up(hosts=1, sink=False, collector=False, lab_dir=folder, progress=progress)
    # Port 0: the sink picks free ports (an empty implicit list would mean its default 2465).
    state["sink"] = sink.spawn(folder, starttls_ports=(0,), implicit_ports=(0,))
    lab_state.save(state)
    progress(f"sink: up on {state['sink']['bind']} ports {state['sink']['ports']}")
    return state


def relay_host(state: dict) -> str:
    """The lab's first relay VM: the one host the benchmark measures on."""
    names = [entry["name"] for entry in state["hosts"] if entry["group"] == "relays"]
    if not names:
        raise SystemExit(f"the lab in {state['lab_dir']} has no relay VM")
    return names[0]


def deploy_relay(state: dict, folder: Path, host: str, overrides: dict) -> float:
    """Deploy deploy/relay.py to `host` only, its relay data changed by `overrides`; seconds taken."""
    inventory = lab_inventory(state, folder, {host: overrides})
    command = [PYINFRA, "-y", str(inventory), "deploy/relay.py", "--limit", host]
    started = time.monotonic()
    result = subprocess.run(command, check=False, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True, timeout=1800,
                            env=dict(os.environ, MAILAGENT_LAB_DIR=state["lab_dir"]))
    inventory.unlink(missing_ok=True)  # it holds the sink's password
    if result.returncode != 0:
        raise SystemExit(f"deploy to {host} failed:\n{result.stdout[-4000:]}")
    return time.monotonic() - started


def run_streaming(state: dict, host: str, command: str, stdin_text: str = "",
                  on_line: Callable[[str], None] = lambda _line: None,
                  timeout: float = 3600.0) -> tuple[int, list[str], str]:
    """Run `command` on `host`, feed it `stdin_text`, call `on_line` as each stdout line arrives.

    Unlike ssh.run this hands lines over while the command runs, so the caller can put its own
    clock on them. Returns (exit status, stdout lines, stderr).
    """
    client = ssh.connect(state, host, timeout=30)
    try:
        channel = client.get_transport().open_session(timeout=30)
        channel.settimeout(timeout)
        channel.exec_command(command)
        channel.sendall(stdin_text.encode())
        channel.shutdown_write()
        lines = []
        for line in channel.makefile("r"):
            lines.append(line.rstrip("\n"))
            on_line(lines[-1])
        err = channel.makefile_stderr("r").read().decode(errors="replace")
        return channel.recv_exit_status(), lines, err
    finally:
        client.close()


def upload_app(state: dict, host: str) -> None:
    """Put bench/relay_app.py on the guest."""
    text = (Path(__file__).with_name("relay_app.py")).read_text()
    folder = APP_PATH.rsplit("/", 1)[0]
    rc, _, err = run_streaming(state, host, f"mkdir -p {folder} && cat > {APP_PATH}", text, timeout=60)
    if rc != 0:
        raise SystemExit(f"cannot upload the benchmark app to {host}: {err}")


def postfix_settings(state: dict, host: str) -> list[str]:
    """What Postfix on `host` really runs with: `postconf -n`, plus the tlsproxy service if on."""
    rc, out, err = ssh.run(state, host, "postconf -n && postconf -M tlsproxy/unix", timeout=60)
    if rc != 0:
        raise SystemExit(f"postconf failed on {host}: {err}")
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


def wait_queue_empty(state: dict, host: str, timeout: float = 300.0) -> int:
    """Wait until the host's Postfix queue is empty; returns what is still queued (0 = empty)."""
    deadline = time.monotonic() + timeout
    while True:
        rc, out, _ = ssh.run(state, host, "postqueue -j | wc -l", timeout=60)
        left = int(out.strip() or 0) if rc == 0 else -1
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(3)


def guest_load(state: dict, host: str) -> str:
    """The guest's load averages (1, 5, 15 min)."""
    rc, out, _ = ssh.run(state, host, "cat /proc/loadavg", timeout=60)
    return " ".join(out.split()[:3]) if rc == 0 else "?"


def sink_records(state: dict) -> list[dict]:
    """Every message the lab's sink accepted so far."""
    return sink.messages(Path(state["lab_dir"]))
