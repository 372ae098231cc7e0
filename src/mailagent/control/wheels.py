"""Wheel sets built on the control machine and uploaded, so hosts never reach a package index.

One set per target (roles ask the host; `mailagent wheels` takes it from the command line):

    <cache>/<target.key>/deps-<hash>/   the dependencies' wheels, resolved once per requirements
    <cache>/<target.key>/<hash>/        a set: those wheels (hard links), the project wheel,
                                        requirements.txt and MANIFEST ("sha256  file" per wheel
                                        and requirements.txt: what the host installs)

The dependencies come from `pip download --only-binary=:all:` for the target's interpreter,
ABI and manylinux levels, from the index pip is configured with; closure.py then checks them
with the target's environment markers (pip judges markers by its own interpreter). A set's hash covers the
dependency layer's MANIFEST and the project wheel's files, so an edit makes a new set and an
unchanged tree reuses the old one without pip. Each folder is built in a temp folder and renamed
into place, so a half-built one is never taken for a cached one.

Errors (the message is what to tell the user):

    WheelError             (targets.py)
    ├── UnsupportedTarget  (targets.py) no set can be built for it: a usage problem
    ├── ResolutionFailed   pip could not resolve the requirements for the target (pip's tail)
    └── NoPreparedSet      a prepared folder holds no set for the target
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mailagent
from mailagent.control.closure import applicable, marker_environment, needs, unmarked
from mailagent.control.projectwheel import package_files, project_wheel
from mailagent.control.requirements import requirements_txt
from mailagent.control.targets import UnsupportedTarget, WheelError, WheelTarget

PACKAGE = Path(mailagent.__file__).resolve().parent
CACHE = Path.home() / ".cache" / "mailagent"
PIP_TIMEOUT = 900
# Part of the dependency layer's hash: raise it when the way dependencies are picked changes.
RESOLVER = "2 markers judged for the target"
MAX_PASSES = 4  # pip, then one more per layer of dependencies only the target's markers want
# What runs on fleet hosts is the agent (with report, signing, relay, fileio and cli): never the
# lab, the collector, Vagrant or this package (with the hub's rendering and the DNS check), nor
# the control machine's modules outside it (the fleet CA, the relay's README tables).
# tests/control/test_agent_closure.py holds the rest to exactly what the host imports.
AGENT_LEAVES_OUT = ("lab", "collector", "vagrantlab", "control", "pki.py", "relay/docs.py")


class ResolutionFailed(WheelError):
    """pip could not resolve the requirements for the target."""


class NoPreparedSet(WheelError):
    """A prepared folder holds no set for the target."""


@dataclass(frozen=True)
class WheelSet:
    """A folder of wheels plus the manifest naming them."""

    folder: Path

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.suffix == ".whl")

    @property
    def manifest(self) -> str:
        return (self.folder / "MANIFEST").read_text()

    @property
    def project_wheel(self) -> Path:
        return next(p for p in self.files if p.name.startswith(f"{PACKAGE.name}-"))


@dataclass(frozen=True)
class SetSpec:
    """What one kind of set holds: requirements, the project wheel's share of the package."""

    name: str                       # in messages and the cache folder's name
    requirements: str               # requirements.txt as uploaded
    leave_out: tuple[str, ...]      # subpackages of mailagent the project wheel leaves out
    cache: Path
    min_python: tuple[int, int] = (3, 10)
    # How a user makes a missing prepared set ({python}, {machine}, {glibc}, {key}, {out}, {cache}).
    how_to_make: str = "mailagent wheels --python {python} --machine {machine} --glibc {glibc} --out {out}"

    def make_hint(self, target: WheelTarget, out: Path) -> str:
        return self.how_to_make.format(python=target.python, machine=target.machine,
                                       glibc="%d.%d" % target.glibc, key=target.key, out=out,
                                       cache=self.cache)


def agent_spec(cache: Path = CACHE / "wheels") -> SetSpec:
    """The agent's set: pyproject's core dependencies and `agent` extra, the host-side package."""
    return SetSpec("agent", requirements_txt("agent"), AGENT_LEAVES_OUT, Path(cache))


def build_set(spec: SetSpec, target: WheelTarget) -> WheelSet:
    """The set of `spec` for `target`, built now if it is not cached."""
    if target.minor < spec.min_python:
        raise UnsupportedTarget(f"Python {target.python}: the {spec.name} needs "
                                f"{'.'.join(map(str, spec.min_python))}+")
    base = spec.cache / target.key
    deps = build_once(base / f"deps-{deps_hash(spec)}",
                      lambda tmp: _download(spec, target, tmp))
    return build_once(base / set_hash(spec, deps), lambda tmp: _assemble(spec, deps, tmp))


def deps_hash(spec: SetSpec) -> str:
    return _digest(f"{RESOLVER}\n{spec.requirements}")


def set_hash(spec: SetSpec, deps: WheelSet) -> str:
    """Content hash of a set: its dependencies' manifest and the project wheel's files."""
    digest = hashlib.sha256(f"{spec.leave_out} {spec.min_python} {mailagent.__version__}\n".encode())
    digest.update(deps.manifest.encode())
    for path in package_files(PACKAGE, spec.leave_out):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def find_prepared(spec: SetSpec, folder: Path, target: WheelTarget) -> WheelSet:
    """The set for `target` in a prepared folder: a folder of sets by target key (what
    `mailagent wheels --out` writes), or one set itself (a MANIFEST at its top)."""
    folder = Path(folder)
    if (folder / "MANIFEST").is_file():
        return WheelSet(folder)
    if (folder / target.key / "MANIFEST").is_file():
        return WheelSet(folder / target.key)
    # A set built for an older glibc runs on this host too: take the newest such.
    fitting = [(t.glibc, path) for path in (folder.iterdir() if folder.is_dir() else ())
               if (t := WheelTarget.from_key(path.name)) and (path / "MANIFEST").is_file()
               and (t.python, t.machine) == (target.python, target.machine) and t.glibc <= target.glibc]
    if fitting:
        return WheelSet(max(fitting)[1])
    raise NoPreparedSet(f"{folder} has no {spec.name} wheel set for {target.describe()} "
                        f"({target.key}); make it with: {spec.make_hint(target, folder)}")


def write_manifest(folder: Path) -> None:
    paths = [*sorted(folder.glob("*.whl")), folder / "requirements.txt"]
    (folder / "MANIFEST").write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in paths))


def build_once(folder: Path, fill: Callable[[Path], None]) -> WheelSet:
    """The set in `folder`, made by `fill(tmp)` (wheels and requirements.txt) if not there yet."""
    if (folder / "MANIFEST").exists():
        return WheelSet(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        fill(tmp)
        write_manifest(tmp)
        try:
            tmp.rename(folder)
        except OSError:
            # Another build finished the same set first (renames are atomic): use theirs.
            if not (folder / "MANIFEST").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return WheelSet(folder)


def _download(spec: SetSpec, target: WheelTarget, folder: Path) -> None:
    """Binary wheels of the requirements and their dependencies for the target, into `folder`:
    pip downloads, closure.py judges the markers as the target would (see its docstring)."""
    env = marker_environment(target)
    wanted = applicable(spec.requirements.splitlines(), env)
    lines = [str(unmarked(r)) for r in wanted]
    for _ in range(MAX_PASSES):
        for stale in folder.glob("*.whl"):
            stale.unlink()
        _pip_download(spec, target, folder, lines)
        found = needs(wanted, sorted(folder.glob("*.whl")), env)
        if not found.missing:
            break
        lines = sorted({*lines, *found.missing})
    else:
        raise ResolutionFailed(f"resolving the {spec.name} wheels for {target.describe()}: still "
                               f"missing after {MAX_PASSES} passes: {', '.join(found.missing)}")
    for wheel in set(folder.glob("*.whl")) - set(found.found.values()):
        wheel.unlink()  # wanted by pip's own interpreter only
    (folder / "requirements.txt").write_text(spec.requirements)


def _pip_download(spec: SetSpec, target: WheelTarget, folder: Path, lines: list[str]) -> None:
    wanted = folder / ".pip-requirements.txt"
    wanted.write_text("\n".join(lines) + "\n")
    platforms = [arg for tag in target.platforms for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "download",
               "--only-binary=:all:", "--python-version", target.python, "--implementation", "cp",
               "--abi", target.abi, *platforms, "--dest", str(folder), "-r", str(wanted)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ResolutionFailed(f"resolving the {spec.name} wheels for {target.describe()}: "
                               f"pip download took over {PIP_TIMEOUT} s") from None
    finally:
        wanted.unlink()
    if done.returncode != 0:
        raise ResolutionFailed(f"resolving the {spec.name} wheels for {target.describe()} failed "
                               f"(pip download):\n{_tail(done.stderr)}")


def _assemble(spec: SetSpec, deps: WheelSet, folder: Path) -> None:
    for wheel in deps.files:
        _link(wheel, folder / wheel.name)
    (folder / "requirements.txt").write_text(spec.requirements)
    project_wheel(PACKAGE, mailagent.__version__, folder, spec.leave_out,
                  requires_python=f">={'.'.join(map(str, spec.min_python))}")


def _link(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, dest)


def _tail(stderr: str, lines: int = 15) -> str:
    # pip warns once per package about extra indexes that lack it: not the reason it failed.
    kept = [line for line in stderr.splitlines() if line.strip()
            and not line.startswith("WARNING: Location ")]
    return "\n".join(kept[-lines:])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]
