"""Wheel sets built on the control machine and uploaded, so hosts never reach a package index.

Shared by the agent and collector roles. A set is a folder keyed by a content hash:

    <cache>/<key>/*.whl, requirements.txt, MANIFEST ("sha256  file" per wheel and requirements)

`build_once` builds it in a temp folder and renames it into place, so a half-built set is never
taken for a cached one.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pyinfra.api import DeployError

PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")


@dataclass(frozen=True)
class WheelSet:
    """A folder of wheels plus the manifest naming them."""

    folder: Path

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.suffix == ".whl")

    @property
    def manifest(self) -> str:
        return (self.folder / "MANIFEST").read_text()

    @property
    def project_wheel(self) -> Path:
        return next(p for p in self.files if p.name.startswith("mailagent-"))


def source_hash(project: Path, extra_files: Iterable[Path] = (), extra_lines: Iterable[str] = ()) -> str:
    """Content hash of pyproject.toml, the package's files, and whatever else goes into a set."""
    digest = hashlib.sha256()
    for line in extra_lines:
        digest.update(line.encode() + b"\n")
    paths = [project / "pyproject.toml", *extra_files, *sorted((project / "src" / "mailagent").rglob("*"))]
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def write_manifest(folder: Path) -> None:
    paths = [*sorted(folder.glob("*.whl")), folder / "requirements.txt"]
    (folder / "MANIFEST").write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in paths))


def build_once(folder: Path, fill: Callable[[Path], None]) -> WheelSet:
    """The set in `folder`, made by `fill(tmp)` (wheels and requirements.txt) if not there yet."""
    if (folder / "MANIFEST").exists():
        return WheelSet(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        fill(tmp)
        write_manifest(tmp)
        try:
            tmp.rename(folder)
        except OSError:
            # Another deploy finished the same set first (renames are atomic): use theirs.
            if not (folder / "MANIFEST").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return WheelSet(folder)


def download(folder: Path, project: Path, requirements: Path, what: str) -> None:
    """The project wheel, and binary wheels of `requirements` for CPython 3.11 on x86_64 Linux."""
    pip(what, "wheel", "--no-deps", "--wheel-dir", str(folder), str(project))
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    pip(what, "download", "--only-binary=:all:", "--python-version", "3.11", *platforms,
        "--dest", str(folder), "-r", str(requirements))


def pip(what: str, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise DeployError(f"building the {what} wheels failed (pip {args[0]}):\n{done.stderr[-2000:]}")
