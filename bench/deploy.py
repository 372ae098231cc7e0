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
    folder = Path(tempfile.mkdtemp(prefix="mailagent-bench-"))
    os.environ["MAILAGENT_LAB_DIR"] = str(folder)
    figures = {}
    try:
        figures[f"lab up ({args.hosts + 1} VMs, cached image)"] = timed(
            lambda: vm.up(hosts=args.hosts + 1, lab_dir=folder, progress=lambda _m: None))
        figures["first deploy, 1 host"] = timed(lambda: pyinfra("--limit", "relay1"))
        figures["re-deploy, same host (no changes)"] = timed(lambda: pyinfra("--limit", "relay1"))
        others = [f"relay{i}" for i in range(2, args.hosts + 2)]
        limits = [arg for name in others for arg in ("--limit", name)]
        figures[f"first deploy, {len(others)} hosts at once"] = timed(lambda: pyinfra(*limits))
    finally:
        vm.down(folder, progress=lambda _m: None)
    first = figures["first deploy, 1 host"]
    print(f"{'measure':<42} {'seconds':>8} {'vs first deploy of 1 host':>27}")
    for name, seconds in figures.items():
        print(f"{name:<42} {seconds:8.1f} {seconds / first:26.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
