"""Deploy timings on the QEMU lab, printed side by side from one run.

    .venv/bin/python bench/deploy.py [--hosts 4]

Boots a fresh lab of 1 + N relay VMs in a temporary folder (the image is reused from the cache;
the lab's sink and collector come up too), then measures: lab up; the first site deploy of one
host; the idempotent re-deploy of that host; the first deploy of the other N hosts at once.
Stops the lab at the end, also on failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mailagent.lab import vm  # noqa: E402


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def measure(figures: dict, name: str, action) -> None:
    """Time `action` and print the figure at once, so an interrupted run still shows what it had."""
    figures[name] = timed(action)
    print(f"{name:<42} {figures[name]:8.1f} s", flush=True)


def pyinfra(*args: str) -> None:
    command = [str(Path(sys.executable).with_name("pyinfra")), "-y", "inventories/lab.py",
               "deploy/site.py", *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"deploy failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4, help="hosts deployed at once")
    args = parser.parse_args()
    # SIGTERM (a timeout) must still stop the lab: make it an exception so `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(tempfile.mkdtemp(prefix="mailagent-bench-"))
    os.environ["MAILAGENT_LAB_DIR"] = str(folder)
    figures = {}
    try:
        measure(figures, f"lab up ({args.hosts + 1} VMs, cached image)",
                lambda: vm.up(hosts=args.hosts + 1, lab_dir=folder, progress=lambda _m: None))
        measure(figures, "first deploy, 1 host", lambda: pyinfra("--limit", "relay1"))
        measure(figures, "re-deploy, same host (no changes)", lambda: pyinfra("--limit", "relay1"))
        others = [f"relay{i}" for i in range(2, args.hosts + 2)]
        limits = [arg for name in others for arg in ("--limit", name)]
        measure(figures, f"first deploy, {len(others)} hosts at once", lambda: pyinfra(*limits))
    finally:
        vm.down(folder, progress=lambda _m: None)
    first = figures["first deploy, 1 host"]
    print(f"\n{'measure':<42} {'seconds':>8} {'vs first deploy of 1 host':>27}")
    for name, seconds in figures.items():
        print(f"{name:<42} {seconds:8.1f} {seconds / first:26.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
