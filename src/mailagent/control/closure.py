"""Which distributions a target needs, judged by the target's own environment markers.

pip's `--python-version` and `--platform` change the tags and Requires-Python it accepts, but
environment markers (`tomli; python_version < "3.11"`, anyio's `exceptiongroup; python_version
< "3.11"`) are still evaluated for the interpreter pip runs on. So the builder downloads with
pip, then walks the wheels' own Requires-Dist here with the target's markers: what is missing
is downloaded next, what the target does not need is left out.

    needs(["anyio>=4"], wheels, env) -> Needs(found={"anyio": Path(...), ...},
                                              missing=["exceptiongroup>=1.0.2"])
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from mailagent.control.targets import WheelTarget


def marker_environment(target: WheelTarget) -> dict[str, str]:
    """PEP 508 marker values on the target host (CPython on Linux)."""
    return {"implementation_name": "cpython", "implementation_version": target.python,
            "os_name": "posix", "platform_machine": target.machine, "platform_release": "",
            "platform_system": "Linux", "platform_version": "", "platform_python_implementation":
            "CPython", "python_full_version": target.python,
            "python_version": "%d.%d" % target.minor, "sys_platform": "linux"}


def applicable(lines: list[str], env: dict[str, str]) -> list[Requirement]:
    """The requirement lines (comments and blanks skipped) whose markers hold on the target."""
    found = []
    for line in lines:
        text = re.sub(r"\s+#.*$", "", line).strip()
        if text and not text.startswith("#"):
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({**env, "extra": ""}):
                found.append(requirement)
    return found


@dataclass
class Needs:
    found: dict[str, Path] = field(default_factory=dict)  # canonical name -> its wheel
    missing: list[str] = field(default_factory=list)      # requirements no wheel there meets


def needs(requirements: list[Requirement], wheels: list[Path], env: dict[str, str]) -> Needs:
    """Walk the requirements through the wheels' metadata, with the target's markers."""
    by_name = {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in wheels}
    result, seen = Needs(), set()
    todo = [(r, "") for r in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        wheel = by_name.get(name)
        if wheel is None or not requirement.specifier.contains(
                str(parse_wheel_filename(wheel.name)[1]), prereleases=True):
            result.missing.append(str(unmarked(requirement)))
            continue
        result.found[name] = wheel
        for wanted in ("", *sorted(requirement.extras)):
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                todo += [(r, wanted) for r in requires_dist(wheel)]
    return result


def requires_dist(wheel: Path) -> list[Requirement]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist()
                        if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(archive.read(metadata).decode("utf-8", "replace"))
    return [Requirement(line) for line in headers.get_all("Requires-Dist") or ()]


def unmarked(requirement: Requirement) -> Requirement:
    copy = Requirement(str(requirement))
    copy.marker = None
    return copy
