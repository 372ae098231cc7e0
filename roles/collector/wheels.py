"""Wheels for the collector, built on the control machine so the collector host needs no index.

A small sibling of roles/mailagent/wheels.py (duplicated, not shared, so the two roles can
change apart): the project wheel plus binary wheels of the collector's runtime requirements,
which are read from pyproject.toml (core dependencies and the `collector` extra, without the
control-machine-only pyinfra and paramiko). Cached by a hash of the sources.

    <cache>/<key>/*.whl, requirements.txt, MANIFEST ("sha256  file" per wheel)
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import mailagent
from pyinfra.api import DeployError

PROJECT = Path(mailagent.__file__).resolve().parents[2]
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
CONTROL_ONLY = ("pyinfra", "paramiko")
DEFAULT_CACHE = Path.home() / ".cache" / "mailagent" / "collector-wheels"


@dataclass(frozen=True)
class WheelSet:
    """A folder of wheels, its requirements.txt and the MANIFEST naming them."""

    folder: Path

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.suffix == ".whl")

    @property
    def manifest(self) -> str:
        return (self.folder / "MANIFEST").read_text()


def requirements(project: Path = PROJECT) -> list[str]:
    """What the collector needs at run time, from pyproject.toml."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    wanted = [*meta["dependencies"], *meta["optional-dependencies"]["collector"]]
    return [r for r in wanted if not r.lower().startswith(CONTROL_ONLY)]


def source_key(project: Path = PROJECT) -> str:
    digest = hashlib.sha256()
    for path in [project / "pyproject.toml", *sorted((project / "src" / "mailagent").rglob("*"))]:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def write_manifest(folder: Path) -> None:
    paths = [*sorted(folder.glob("*.whl")), folder / "requirements.txt"]
    (folder / "MANIFEST").write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in paths))


def build_wheels(cache: Path = DEFAULT_CACHE, project: Path = PROJECT) -> WheelSet:
    """The wheel set for the current source, built now if not cached."""
    folder = Path(cache) / source_key(project)
    if (folder / "MANIFEST").exists():
        return WheelSet(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        (tmp / "requirements.txt").write_text("\n".join(requirements(project)) + "\n")
        _pip("wheel", "--no-deps", "--wheel-dir", str(tmp), str(project))
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        _pip("download", "--only-binary=:all:", "--python-version", "3.11", *platforms,
             "--dest", str(tmp), "-r", str(tmp / "requirements.txt"))
        write_manifest(tmp)
        tmp.rename(folder)  # atomic: a half-built set is never taken for a cached one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return WheelSet(folder)


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise DeployError(f"building the collector wheels failed (pip {args[0]}):\n"
                          f"{done.stderr[-2000:]}")
