"""Checks shared by the wheel-set tests: what a wheel's tags allow, and pip run as a host would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.utils import parse_wheel_filename

from mailagent.control.targets import WheelTarget

_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def host_env() -> dict[str, str]:
    """pip's environment without this machine's configuration (indexes, find-links, caps):
    on a host there is none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def platform_fits(tag: str, target: WheelTarget) -> bool:
    match = _MANYLINUX.fullmatch(tag)
    if match:
        level, machine = (int(match[1]), int(match[2])), match[3]
    else:
        legacy, _, machine = tag.partition("_")
        if legacy not in _LEGACY:
            return False
        level = _LEGACY[legacy]
    return machine == target.machine and level <= target.glibc


def wheel_fits(filename: str, target: WheelTarget) -> bool:
    """Pure Python, or built for the target's machine, glibc and CPython (its own ABI, or abi3
    with a minimum at most the target's)."""
    _, _, _, tags = parse_wheel_filename(filename)
    minor = target.minor[1]
    for tag in tags:
        if tag.platform == "any":
            if tag.abi == "none" and tag.interpreter in ("py3", f"py3{minor}"):
                return True
        elif platform_fits(tag.platform, target):
            if tag.abi == tag.interpreter == target.abi:
                return True
            low = re.fullmatch(r"cp3(\d+)", tag.interpreter)
            if tag.abi == "abi3" and low and int(low[1]) <= minor:
                return True
    return False


def dry_run(folder: Path, target: WheelTarget, tmp: Path) -> dict:
    """pip's install report for the set's requirements and project wheel, from the set alone."""
    platforms = [arg for tag in target.platforms for arg in ("--platform", tag)]
    wheel = next(folder.glob("mailagent-*.whl"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
         "--only-binary=:all:", "--no-index", "--find-links", str(folder),
         "--python-version", target.python, "--implementation", "cp", "--abi", target.abi,
         *platforms, "--target", str(tmp / "target"), "-r", str(folder / "requirements.txt"),
         str(wheel)], capture_output=True, text=True, env=host_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)
