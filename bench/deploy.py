"""Deploy timings on the QEMU lab, printed side by side from one run.

    .venv/bin/python bench/deploy.py [--hosts 4]

Boots a fresh lab of 1 + N relay VMs in a temporary folder (the image is reused from the cache;
the lab's sink and collector come up too), then measures: lab up; the first site deploy of one
host; the idempotent re-deploy of that host; the first deploy of the other N hosts at once.
Where the time goes: each deploy runs with `-v`, its output read line by line as it comes, so
the time between lines is charged to the fact being loaded (planning) or the operation running
(execution); the slowest of each are printed per deploy (one host: the others interleave).
While a deploy is timed the lab's other VMs are paused (SIGSTOP to their QEMU processes), so
each figure is the deployed hosts' own. Guest CPU: each deploy's CPU seconds of the deployed VMs' QEMU processes (from /proc), and from
them the floor for deploying N hosts at once on this machine's cores when the guests' work is CPU
bound (emulated guests are): N x one host's guest CPU / cores, against one host's wall time.
Stops the lab at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mailagent.lab import state as lab_state, vm  # noqa: E402


def qemu_pid(folder: Path, name: str) -> int:
    """The pid of VM `name`'s QEMU process, as the lab recorded it."""
    return lab_state.host(lab_state.load(folder), name)["pid"]


def guest_cpu(folder: Path, names: list[str]) -> float:
    """CPU seconds (user + system) the QEMU processes of `names` have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for name in names:
        fields = Path(f"/proc/{qemu_pid(folder, name)}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def measure(figures: dict, name: str, action) -> None:
    """Time `action` and print the figure at once, so an interrupted run still shows what it had."""
    figures[name] = timed(action)
    print(f"{name:<42} {figures[name]:8.1f} s", flush=True)


FACT = re.compile(r"Loaded fact (\S+)")
OPERATION = re.compile(r"--> Starting (?:[a-z ,]+ )?operation: (.+)")
ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def pyinfra(*args: str, profile: dict | None = None) -> None:
    """One deploy; with `profile`, charge its time to facts and operations into it."""
    command = [str(Path(sys.executable).with_name("pyinfra")), "-y", "-v", "inventories/lab.py",
               "deploy/site.py", *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines, last, running = [], time.monotonic(), None
    for line in process.stdout:
        now, line = time.monotonic(), ESCAPES.sub("", line)
        lines.append(line)
        if profile is not None:
            running = _charge(profile, line, now - last, running)
        last = now
    if process.wait() != 0:
        raise SystemExit("deploy failed:\n" + "".join(lines[-80:]))


def _charge(profile: dict, line: str, seconds: float, running: str | None) -> str | None:
    """Add `seconds` (the wait before `line`) to the fact the line reports or the running op."""
    fact = FACT.search(line)
    if fact:
        key = f"fact {fact.group(1)}"
        count, total = profile.get(key, (0, 0.0))
        profile[key] = (count + 1, total + seconds)
        return running
    if running:
        count, total = profile.get(running, (0, 0.0))
        profile[running] = (count, total + seconds)
    operation = OPERATION.search(line)
    if operation:
        running = f"op   {operation.group(1).strip()}"
        profile.setdefault(running, (1, 0.0))
    return running


def print_profile(name: str, profile: dict, top: int = 10) -> None:
    print(f"\nwhere the time goes: {name} (slowest {top}; facts summed over their calls)")
    for key, (count, seconds) in sorted(profile.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {seconds:7.1f} s  {count:3d}x  {key}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4, help="hosts deployed at once")
    args = parser.parse_args()
    # SIGTERM (a timeout) must still stop the lab: make it an exception so `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(tempfile.mkdtemp(prefix="mailagent-bench-"))
    os.environ["MAILAGENT_LAB_DIR"] = str(folder)
    figures, cpu = {}, {}
    everyone = [f"relay{i}" for i in range(1, args.hosts + 2)]
    profiles = {"first deploy, 1 host": {}, "re-deploy, same host (no changes)": {}}

    def deploy(name: str, hosts: list[str], profile: dict | None = None) -> None:
        """Time the deploy of `hosts` with the lab's other VMs paused: an idle fresh guest takes
        little CPU, a deployed one (its agent and Postfix, emulated) a third of a core."""
        paused = [qemu_pid(folder, v) for v in everyone if v not in hosts]
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            before = guest_cpu(folder, hosts)
            measure(figures, name, lambda: pyinfra(*[a for h in hosts for a in ("--limit", h)],
                                                   profile=profile))
            cpu[name] = guest_cpu(folder, hosts) - before
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)

    try:
        measure(figures, f"lab up ({args.hosts + 1} VMs, cached image)",
                lambda: vm.up(hosts=args.hosts + 1, lab_dir=folder, progress=lambda _m: None))
        for name, profile in profiles.items():
            deploy(name, ["relay1"], profile)
        others = [f"relay{i}" for i in range(2, args.hosts + 2)]
        deploy(f"first deploy, {len(others)} hosts at once", others)
    finally:
        vm.down(folder, progress=lambda _m: None)
    for name, profile in profiles.items():
        print_profile(name, profile)
    first = figures["first deploy, 1 host"]
    print(f"\n{'measure':<42} {'seconds':>8} {'vs first deploy of 1 host':>27} {'guest CPU s':>12}")
    for name, seconds in figures.items():
        guest = f"{cpu[name]:12.1f}" if name in cpu else ""
        print(f"{name:<42} {seconds:8.1f} {seconds / first:26.2f}x {guest}")
    cores = os.cpu_count() or 1
    floor = max(1.0, args.hosts * cpu["first deploy, 1 host"] / cores / first)
    print(f"floor for {args.hosts} hosts at once on {cores} cores (CPU-bound guests): {floor:.2f}x "
          f"of one host; measured {figures[f'first deploy, {args.hosts} hosts at once'] / first:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
