"""The collector's wheel set for its host, built on the control machine so it needs no index.

The project wheel (everything the collector runs, without the lab, Vagrant and control parts)
plus binary wheels of the collector's runtime requirements, read from pyproject.toml (core
dependencies and the `collector` extra, without the control-machine-only pyinfra and paramiko);
mailagent.control.wheels does the resolving and caching, per target like the agent's.

    <cache>/<target key>/<hash>/*.whl, requirements.txt, MANIFEST ("sha256  file" per wheel)
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import mailagent
from mailagent.control.wheels import CACHE, SetSpec
from roles.wheelhouse import WheelSet, WheelTarget, set_for, write_manifest  # noqa: F401

PROJECT = Path(mailagent.__file__).resolve().parents[2]
CONTROL_ONLY = ("pyinfra", "paramiko")
LEAVES_OUT = ("lab", "vagrantlab", "control")
MIN_PYTHON = (3, 11)  # the collector reads its settings with tomllib
DEFAULT_CACHE = CACHE / "collector-wheels"
# There is no command for the collector's set alone: a deploy with an index builds it.
HOW_TO_MAKE = ("deploy once without collector_wheel_dir from a control machine that reaches an "
               "index (the set lands in {cache}/{key}/<hash>/) and copy that folder to {out}/{key}")


def requirements(project: Path = PROJECT) -> list[str]:
    """What the collector needs at run time, from pyproject.toml."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    wanted = [*meta["dependencies"], *meta["optional-dependencies"]["collector"]]
    return [r for r in wanted if not r.lower().startswith(CONTROL_ONLY)]


def collector_spec(cache: Path = DEFAULT_CACHE, project: Path = PROJECT) -> SetSpec:
    return SetSpec("collector", "\n".join(requirements(project)) + "\n", LEAVES_OUT, Path(cache),
                   min_python=MIN_PYTHON, how_to_make=HOW_TO_MAKE)


def wheel_set_for(target: WheelTarget, prepared: str | None = None,
                  cache: Path = DEFAULT_CACHE) -> WheelSet:
    """The collector's set for `target`: from the prepared folder when given, else built/cached."""
    return set_for(collector_spec(cache), target, prepared, "collector_wheel_dir")
