"""The collector's wheel set for its host, built on the control machine so it needs no index.

The project wheel (everything the collector runs, without the lab, Vagrant and control parts)
plus binary wheels of the collector's runtime requirements: pyproject's core dependencies and
its `collector` extra (mailagent.control.requirements); mailagent.control.wheels does the
resolving and caching, per target like the agent's.

    <cache>/<target key>/<hash>/*.whl, requirements.txt, MANIFEST ("sha256  file" per wheel)
"""

from __future__ import annotations

from pathlib import Path

from mailagent.control import requirements as declared
from mailagent.control.wheels import CACHE, SetSpec
from roles.wheelhouse import WheelSet, WheelTarget, set_for, write_manifest  # noqa: F401

LEAVES_OUT = ("lab", "vagrantlab", "control")
MIN_PYTHON = (3, 11)  # the collector reads its settings with tomllib
DEFAULT_CACHE = CACHE / "collector-wheels"
# There is no command for the collector's set alone: a deploy with an index builds it.
HOW_TO_MAKE = ("deploy once without collector_wheel_dir from a control machine that reaches an "
               "index (the set lands in {cache}/{key}/<hash>/) and copy that folder to {out}/{key}")


def requirements(project: Path | None = declared.CHECKOUT) -> list[str]:
    """What the collector needs at run time: the core dependencies and the `collector` extra."""
    return declared.requirements("collector", project)


def collector_spec(cache: Path = DEFAULT_CACHE, project: Path | None = declared.CHECKOUT) -> SetSpec:
    return SetSpec("collector", declared.requirements_txt("collector", project), LEAVES_OUT,
                   Path(cache), min_python=MIN_PYTHON, how_to_make=HOW_TO_MAKE)


def wheel_set_for(target: WheelTarget, prepared: str | None = None,
                  cache: Path = DEFAULT_CACHE) -> WheelSet:
    """The collector's set for `target`: from the prepared folder when given, else built/cached."""
    return set_for(collector_spec(cache), target, prepared, "collector_wheel_dir")
