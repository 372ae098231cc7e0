"""Wheels without a package index: repack what the control machine has installed.

When the control machine runs the hosts' Python (CPython 3.11 on x86_64 Linux, as Debian 12
does), the agent's dependencies installed here are the very files a host needs. Each installed
distribution is zipped back into a wheel from its RECORD (tags from its WHEEL file), and the
project itself is packed straight from src/mailagent. No network, no build backend; `pip install
--no-index` on the host accepts them like downloaded wheels.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import platform
import re
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

TARGET = ((3, 11), "x86_64")


def matches_target() -> bool:
    """True when this interpreter's wheels fit the hosts (CPython 3.11, x86_64, glibc Linux)."""
    return (sys.implementation.name == "cpython" and sys.version_info[:2] == TARGET[0]
            and platform.machine() == TARGET[1] and platform.libc_ver()[0] == "glibc")


def closure(requirement_lines: list[str]) -> list[metadata.Distribution]:
    """The installed distributions the requirements need, dependencies included (no extras)."""
    env = {**default_environment(), "extra": ""}
    todo = [Requirement(line) for line in requirement_lines if line.strip() and not line.startswith("#")]
    found: dict[str, metadata.Distribution] = {}
    while todo:
        req = todo.pop()
        key = _normal(req.name)
        if key in found or (req.marker and not req.marker.evaluate(env)):
            continue
        found[key] = metadata.distribution(req.name)
        todo += [Requirement(r) for r in found[key].requires or ()]
    return sorted(found.values(), key=lambda d: _normal(d.metadata["Name"]))


def repack(dist: metadata.Distribution, folder: Path) -> Path:
    """Zip an installed distribution back into a wheel in `folder`."""
    tag = next(line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines()
               if line.startswith("Tag: "))
    name, version = _normal(dist.metadata["Name"]), dist.version
    files = {str(f): dist.locate_file(f).read_bytes() for f in dist.files or ()
             if not str(f).startswith("..") and "__pycache__" not in str(f)
             and not str(f).endswith(("/RECORD", "/INSTALLER", "/direct_url.json", "/REQUESTED"))}
    dist_info = next(p.split("/")[0] for p in files if p.split("/")[0].endswith(".dist-info"))
    return _write_wheel(folder / f"{name}-{version}-{tag}.whl", files, f"{dist_info}/RECORD")


def project_wheel(src: Path, name: str, version: str, folder: Path) -> Path:
    """A pure-Python wheel of the package in `src` (the mailagent console script included)."""
    dist_info = f"{name}-{version}.dist-info"
    files = {str(p.relative_to(src.parent)): p.read_bytes() for p in sorted(src.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    files[f"{dist_info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                      "Requires-Python: >=3.11\n").encode()
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: roles.mailagent.wheelpack\n"
                                   b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nmailagent = mailagent.cli:main\n"
    return _write_wheel(folder / f"{name}-{version}-py3-none-any.whl", files, f"{dist_info}/RECORD")


def _write_wheel(path: Path, files: dict[str, bytes], record_name: str) -> Path:
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    record.append(f"{record_name},,")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(record_name, "\n".join(record) + "\n")
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
