"""The target's own markers decide what a set holds (pip's --python-version does not)."""

from __future__ import annotations

import zipfile

from packaging.requirements import Requirement

from mailagent.control.closure import applicable, marker_environment, needs
from mailagent.control.targets import WheelTarget

UBUNTU2204 = WheelTarget("3.10.12", "x86_64", (2, 35))
DEBIAN13_ARM = WheelTarget("3.13.5", "aarch64", (2, 41))


def wheel(folder, name, version, *requires):
    path = folder / f"{name}-{version}-py3-none-any.whl"
    metadata = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA",
                         f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{metadata}")
    return path


def test_requirement_lines_by_the_targets_markers():
    lines = ["# comment", "", "pydantic>=2.6,<3", 'tomli>=2; python_version < "3.11"  # why',
             'uvloop; platform_machine == "x86_64"']
    names = [r.name for r in applicable(lines, marker_environment(UBUNTU2204))]
    assert names == ["pydantic", "tomli", "uvloop"]
    assert [r.name for r in applicable(lines, marker_environment(DEBIAN13_ARM))] == ["pydantic"]


def test_dependencies_only_the_target_needs_are_missing_and_unused_ones_left_out(tmp_path):
    wheels = [wheel(tmp_path, "anyio", "4.16.0", 'exceptiongroup>=1.0.2; python_version < "3.11"',
                    "idna>=2.8", 'typing_extensions>=4.5; python_version < "3.13"'),
              wheel(tmp_path, "idna", "3.20"), wheel(tmp_path, "typing_extensions", "4.16.0"),
              wheel(tmp_path, "uvicorn", "0.40.0", "h11>=0.8", 'httptools>=0.6; extra == "standard"'),
              wheel(tmp_path, "h11", "0.16.0")]
    old = needs([Requirement("anyio>=4")], wheels, marker_environment(UBUNTU2204))
    assert old.missing == ["exceptiongroup>=1.0.2"]
    new = needs([Requirement("anyio>=4")], wheels, marker_environment(DEBIAN13_ARM))
    assert new.missing == [] and set(new.found) == {"anyio", "idna"}  # typing_extensions unused
    served = needs([Requirement("uvicorn[standard]")], wheels, marker_environment(DEBIAN13_ARM))
    assert served.missing == ["httptools>=0.6"] and "h11" in served.found
    assert needs([Requirement("idna>=4")], wheels, marker_environment(DEBIAN13_ARM)).missing == ["idna>=4"]
