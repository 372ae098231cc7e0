"""The package's import graph: no cycles, and an import inside a function says why it is there."""

from __future__ import annotations

import ast
from pathlib import Path

import mailagent

PACKAGE = Path(mailagent.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules an import statement loads (`from a import b` may name module a.b)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = node.module or ""
    found = {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {name for name in found if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere: at the top or inside a function (an
    import moved into a function hides a cycle from Python, not from this)."""
    graph = {}
    for name, path in MODULES.items():
        nodes = ast.walk(ast.parse(path.read_text()))
        edges = set().union(*(imported(n) for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))))
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles():
    # A parent package importing its own submodule is not a cycle Python trips over.
    graph = {name: {m for m in edges if not name.startswith(m + ".")}
             for name, edges in import_graph().items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_imports_inside_functions_say_why():
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        # A module-level comment about its commands' imports covers them all (the CLI modules).
        if any(line.startswith("#") and "import" in line for line in lines):
            continue
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    if not _explained(lines, sub.lineno, node.lineno):
                        unexplained.append(f"{name}:{sub.lineno}")
    assert unexplained == []


def _explained(lines: list[str], lineno: int, def_lineno: int) -> bool:
    """A comment on the import's line, above it in its function, or just above the function."""
    if "#" in lines[lineno - 1]:
        return True
    inside = lines[def_lineno:lineno - 1]
    above = lines[max(0, def_lineno - 4):def_lineno - 1]
    return any(line.strip().startswith("#") for line in inside + above)
