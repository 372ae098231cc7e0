"""Wheel sets for the roles: mailagent.control.wheels builds them; here its errors become
DeployError and a host's prepared folder (air-gapped control machines, tests) is looked up.

    <prepared>/<target key>/   what `mailagent wheels --out <prepared>` writes, one per target
    <prepared>/MANIFEST        or a single set (older data): used for every host as it is
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyinfra.api import DeployError

from mailagent.control.targets import WheelTarget
from mailagent.control.wheels import (SetSpec, WheelError, WheelSet, build_set, find_prepared,
                                      write_manifest)

__all__ = ["WheelSet", "WheelTarget", "set_for", "write_manifest"]


def set_for(spec: SetSpec, target: WheelTarget, prepared: str | None, data_key: str) -> WheelSet:
    """The prepared set for `target` when the host names a folder, else one built (or cached)."""
    with deploy_errors(spec, data_key):
        return find_prepared(spec, Path(prepared), target) if prepared else build_set(spec, target)


@contextmanager
def deploy_errors(spec: SetSpec, data_key: str) -> Iterator[None]:
    try:
        yield
    except WheelError as exc:
        raise DeployError(f"{spec.name} wheels ({data_key}): {exc}") from exc
