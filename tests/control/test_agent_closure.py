"""The agent's project wheel holds exactly what a fleet host imports, and its requirements cover
every other package that code imports.

What a host runs: the `mailagent` console script (mailagent.cli), the relay's and the agent's
commands, and every agent module (checks are imported by name from the registry). From there the
closure follows each `import` and `from ... import` in the package's source, at module level or
inside a function, absolute or relative.
"""

from __future__ import annotations

import ast
import sys
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import mailagent
from mailagent.cli import AREAS
from mailagent.control.projectwheel import project_wheel
from mailagent.control.wheels import PACKAGE, agent_spec

HOST_AREAS = ("mailagent.relay.cli", "mailagent.agent.cli")
HOST_ROOTS = ("mailagent.cli", "mailagent.__main__", *HOST_AREAS)


def modules(package: Path) -> dict[str, Path]:
    """{dotted name: file} of every module in the package's source."""
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """Every module name `name`'s source imports (for `from a import b`: a, and a.b if a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def closure(roots, source: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(the package's modules reachable from `roots`, with their parent packages; the top-level
    names of everything else they import that is not in the standard library)."""
    ours, others, todo = set(), set(), list(roots)
    while todo:
        name = todo.pop()
        if name in ours or name not in source:
            continue
        ours.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        for module in imported(name, source[name]):
            top = module.split(".")[0]
            if top == mailagent.__name__:
                todo.append(module)
            elif top not in sys.stdlib_module_names and top != "__future__":
                others.add(top)
    return ours, others


@pytest.fixture(scope="module")
def host_side(tmp_path_factory):
    """(the modules in the agent's project wheel, the host's import closure, its third-party
    imports), the wheel made as the agent's set makes it."""
    spec = agent_spec()
    wheel = project_wheel(PACKAGE, mailagent.__version__, tmp_path_factory.mktemp("wheel"), spec.leave_out)
    with zipfile.ZipFile(wheel) as archive:
        files = [n for n in archive.namelist() if n.endswith(".py")]
    in_wheel = {".".join(Path(n).with_suffix("").parts).removesuffix(".__init__") for n in files}
    source = modules(PACKAGE)
    roots = [*HOST_ROOTS, *(name for name in source if name.startswith("mailagent.agent."))]
    return in_wheel, *closure(roots, source)


def test_the_wheel_holds_exactly_the_hosts_import_closure(host_side):
    in_wheel, reached, _ = host_side
    assert sorted(in_wheel - reached) == [], "in the agent's wheel, never imported on a host"
    assert sorted(reached - in_wheel) == [], "imported on a host, missing from the agent's wheel"


def test_a_host_offers_only_the_relay_and_agent_commands(host_side):
    in_wheel, _, _ = host_side
    assert set(HOST_AREAS) <= set(AREAS)
    assert [area for area in AREAS if area in in_wheel] == list(HOST_AREAS)  # no dns-check, lab...


def test_the_agent_requirements_cover_every_package_the_host_imports(host_side):
    _, _, third_party = host_side
    required = {canonicalize_name(Requirement(line).name) for line in agent_spec().requirements.splitlines()}
    distributions = packages_distributions()
    missing = {top for top in third_party
               if not {canonicalize_name(d) for d in distributions.get(top, [top])} & required}
    assert missing == set()
    assert {"httpx", "pydantic", "jinja2", "cryptography"} <= third_party
