"""The agent's wheel set for a host, built on the control machine (mailagent.control.wheels).

    <cache>/<target key>/<hash>/mailagent-0.1.0-py3-none-any.whl   the host-side package only
    <cache>/<target key>/<hash>/pydantic_core-…-cp313-…aarch64.whl  dependencies for the host's
                                                                    CPython, machine and glibc
    <cache>/<target key>/<hash>/requirements.txt, MANIFEST          what the host installs

Hosts never reach an index: `mailagent_wheel_dir` names a folder of prepared sets (`mailagent
wheels --out DIR`), else the set is built here with pip from the index pip is configured with.
"""

from __future__ import annotations

from pathlib import Path

from mailagent.control.wheels import CACHE, agent_spec
from roles.wheelhouse import WheelSet, WheelTarget, set_for, write_manifest  # noqa: F401

DEFAULT_CACHE = CACHE / "wheels"


def wheel_set_for(target: WheelTarget, prepared: str | None = None,
                  cache: Path = DEFAULT_CACHE) -> WheelSet:
    """The agent's set for `target`: from the prepared folder when given, else built/cached."""
    return set_for(agent_spec(cache), target, prepared, "mailagent_wheel_dir")


def build_wheels(cache: Path = DEFAULT_CACHE) -> WheelSet:
    """The agent's set for this control machine's own interpreter (local venvs: tests, benches)."""
    return wheel_set_for(WheelTarget.local(), cache=cache)
