"""Wheels for the collector, built on the control machine so the collector host needs no index.

The project wheel plus binary wheels of the collector's runtime requirements, read from
pyproject.toml (core dependencies and the `collector` extra, without the control-machine-only
pyinfra and paramiko); roles/wheelhouse.py does the building and caching.

    <cache>/<key>/*.whl, requirements.txt, MANIFEST ("sha256  file" per wheel)
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import mailagent

from roles.wheelhouse import WheelSet, build_once, download, source_hash, write_manifest  # noqa: F401

PROJECT = Path(mailagent.__file__).resolve().parents[2]
CONTROL_ONLY = ("pyinfra", "paramiko")
DEFAULT_CACHE = Path.home() / ".cache" / "mailagent" / "collector-wheels"


def requirements(project: Path = PROJECT) -> list[str]:
    """What the collector needs at run time, from pyproject.toml."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    wanted = [*meta["dependencies"], *meta["optional-dependencies"]["collector"]]
    return [r for r in wanted if not r.lower().startswith(CONTROL_ONLY)]


def build_wheels(cache: Path = DEFAULT_CACHE, project: Path = PROJECT) -> WheelSet:
    """The wheel set for the current source, built now if not cached."""

    def fill(folder: Path) -> None:
        (folder / "requirements.txt").write_text("\n".join(requirements(project)) + "\n")
        download(folder, project, folder / "requirements.txt", "collector")

    return build_once(Path(cache) / source_hash(project), fill)
