"""Build the agent's wheels on the control machine, once per source version (cached by content).

    <cache>/<key>/mailagent-0.1.0-py3-none-any.whl      the project
    <cache>/<key>/pydantic-…manylinux….whl, httpx-…     its runtime dependencies for CPython 3.11
                                                        on x86_64 Linux
    <cache>/<key>/requirements.txt                      src/mailagent/agent/requirements.txt
    <cache>/<key>/MANIFEST                              "sha256  file" per wheel: what the host installs

Two ways, the first that applies: when the control machine itself runs CPython 3.11 on x86_64
glibc Linux, the installed packages are repacked (wheelpack.py: offline, no build backend);
otherwise `pip wheel --no-deps` and `pip download --only-binary=:all: --python-version 3.11
--platform manylinux…` from the index pip is configured with.

`key` hashes pyproject.toml, the agent requirements, every file of the package (and, when
repacking, the installed versions), so an edit makes a new set and an unchanged tree reuses the
old one. Hosts never reach an index.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mailagent
from pyinfra.api import DeployError

from roles.mailagent import wheelpack

PROJECT = Path(mailagent.__file__).resolve().parents[2]
REQUIREMENTS = Path(mailagent.__file__).resolve().parent / "agent" / "requirements.txt"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
DEFAULT_CACHE = Path.home() / ".cache" / "mailagent" / "wheels"


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


def source_key(project: Path = PROJECT) -> str:
    """Content hash of what goes into the wheels (and of the installed set when repacking)."""
    digest = hashlib.sha256()
    if wheelpack.matches_target():
        for dist in wheelpack.closure(REQUIREMENTS.read_text().splitlines()):
            digest.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    paths = [project / "pyproject.toml", REQUIREMENTS, *sorted((project / "src" / "mailagent").rglob("*"))]
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def write_manifest(folder: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
             for p in sorted(folder.glob("*.whl"))]
    lines.append(f"{hashlib.sha256((folder / 'requirements.txt').read_bytes()).hexdigest()}  requirements.txt\n")
    (folder / "MANIFEST").write_text("".join(lines))


def build_wheels(cache: Path = DEFAULT_CACHE, project: Path = PROJECT) -> WheelSet:
    """The wheel set for the current source, built now if not cached."""
    folder = Path(cache) / source_key(project)
    if (folder / "MANIFEST").exists():
        return WheelSet(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        if wheelpack.matches_target():
            _repack(project, tmp)
        else:
            _download(project, tmp)
        shutil.copy(REQUIREMENTS, tmp / "requirements.txt")
        write_manifest(tmp)
        tmp.rename(folder)  # atomic: a half-built set is never taken for a cached one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return WheelSet(folder)


def _repack(project: Path, folder: Path) -> None:
    wheelpack.project_wheel(project / "src" / "mailagent", "mailagent", mailagent.__version__, folder)
    for dist in wheelpack.closure(REQUIREMENTS.read_text().splitlines()):
        wheelpack.repack(dist, folder)


def _download(project: Path, folder: Path) -> None:
    _pip("wheel", "--no-deps", "--wheel-dir", str(folder), str(project))
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    _pip("download", "--only-binary=:all:", "--python-version", "3.11", *platforms,
         "--dest", str(folder), "-r", str(REQUIREMENTS))


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"building the agent wheels failed (pip {args[0]}):\n{result.stderr[-2000:]}")
