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

import shutil
from pathlib import Path

import mailagent

from roles.mailagent import wheelpack
from roles.wheelhouse import WheelSet, build_once, download, source_hash, write_manifest  # noqa: F401

PROJECT = Path(mailagent.__file__).resolve().parents[2]
REQUIREMENTS = Path(mailagent.__file__).resolve().parent / "agent" / "requirements.txt"
DEFAULT_CACHE = Path.home() / ".cache" / "mailagent" / "wheels"


def source_key(project: Path = PROJECT) -> str:
    """Content hash of what goes into the wheels (and of the installed set when repacking)."""
    installed = []
    if wheelpack.matches_target():
        installed = [f"{d.metadata['Name']}=={d.version}"
                     for d in wheelpack.closure(REQUIREMENTS.read_text().splitlines())]
    return source_hash(project, [REQUIREMENTS], installed)


def build_wheels(cache: Path = DEFAULT_CACHE, project: Path = PROJECT) -> WheelSet:
    """The wheel set for the current source, built now if not cached."""

    def fill(folder: Path) -> None:
        if wheelpack.matches_target():
            _repack(project, folder)
        else:
            download(folder, project, REQUIREMENTS, "agent")
        shutil.copy(REQUIREMENTS, folder / "requirements.txt")

    return build_once(Path(cache) / source_key(project), fill)


def _repack(project: Path, folder: Path) -> None:
    wheelpack.project_wheel(project / "src" / "mailagent", "mailagent", mailagent.__version__, folder)
    for dist in wheelpack.closure(REQUIREMENTS.read_text().splitlines()):
        wheelpack.repack(dist, folder)
