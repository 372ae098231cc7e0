"""What each wheel set installs, from the project's one list of dependencies (pyproject.toml).

    requirements("agent")      the core dependencies and the `agent` extra: what fleet hosts run
    requirements("collector")  the core and the `collector` extra (with `mailagent[agent]`, the
                               extras it names itself)

Each line keeps its own markers (`tomli>=2; python_version < "3.11"`, judged for the target by
closure.py) and loses the `extra == ...` one. The source is the checkout's pyproject.toml when
this package runs from one, since an editable install's metadata keeps the dependencies of the
last `pip install -e` and so goes stale when pyproject.toml is edited; else (a built install)
the installed distribution's metadata. Both give the same lines for the same declarations.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the control machine's Python 3.10
    import tomli as tomllib

NAME = "mailagent"
CHECKOUT = Path(__file__).resolve().parents[3]  # src/mailagent/control/ -> the checkout
# setuptools writes an extra's requirement as `name>=1; extra == "x"`, or with markers of its
# own, `name>=1; (python_version < "3.11") and extra == "x"`.
_EXTRA = re.compile(r"""^(?:(?P<rest>.*?)\s+and\s+)?extra\s*==\s*["'](?P<extra>[^"']+)["']$""")


def requirements(extra: str, project: Path | None = CHECKOUT) -> list[str]:
    """The core dependencies and those of `extra` (and of the extras it names), in order."""
    core, extras = declared(project)
    if extra not in extras:
        raise KeyError(f"{NAME} declares no extra {extra!r} (it has: {', '.join(sorted(extras))})")
    return _unique([*core, *_expand(extra, extras)])


def requirements_txt(extra: str, project: Path | None = CHECKOUT) -> str:
    """requirements.txt for a wheel set: `requirements(extra)`, one a line."""
    return "".join(f"{line}\n" for line in requirements(extra, project))


def declared(project: Path | None = CHECKOUT) -> tuple[list[str], dict[str, list[str]]]:
    """(core, {extra: its own lines}), normalised, from the checkout or else the metadata."""
    pyproject = project / "pyproject.toml" if project else None
    if pyproject and pyproject.is_file():
        meta = tomllib.loads(pyproject.read_text())["project"]
        if meta.get("name") == NAME:
            return ([_normal(r) for r in meta.get("dependencies", [])],
                    {extra: [_normal(r) for r in lines]
                     for extra, lines in meta.get("optional-dependencies", {}).items()})
    return from_metadata(metadata.requires(NAME) or [], metadata.metadata(NAME).get_all("Provides-Extra") or [])


def from_metadata(lines: list[str], extras: list[str] = ()) -> tuple[list[str], dict[str, list[str]]]:
    """(core, {extra: its own lines}) from Requires-Dist lines, the extra's marker dropped."""
    core, by_extra = [], {extra: [] for extra in extras}
    for line in lines:
        requirement, _, marker = line.partition(";")
        found = _EXTRA.match(marker.strip())
        if found is None:
            core.append(_normal(line))
            continue
        rest = (found["rest"] or "").strip()
        if rest.startswith("(") and rest.endswith(")"):
            rest = rest[1:-1]
        by_extra.setdefault(found["extra"], []).append(
            _normal(f"{requirement.strip()}; {rest}" if rest else requirement))
    return core, by_extra


def _expand(extra: str, extras: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> list[str]:
    """An extra's lines, a `mailagent[x,y]` line replaced by the lines of x and y."""
    lines = []
    for line in extras[extra]:
        requirement = Requirement(line)
        if requirement.name != NAME:
            lines.append(line)
            continue
        for named in sorted(requirement.extras - seen - {extra}):
            lines += _expand(named, extras, seen | {extra})
    return lines


def _normal(line: str) -> str:
    return str(Requirement(line))


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
