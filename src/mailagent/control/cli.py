"""`mailagent wheels --python X.Y[.Z] --machine M [--glibc 2.N] --out DIR`: the agent's wheel set
for a target, built without a host, into DIR/<target key>/ (for `mailagent_wheel_dir`)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from mailagent.control.targets import MACHINES, UnsupportedTarget, parse_target


def register(subparsers) -> None:
    cmd = subparsers.add_parser("wheels", help="build the agent's wheel set for a host platform "
                                "into DIR/<target>/ (for mailagent_wheel_dir; air-gapped deploys)")
    cmd.add_argument("--python", required=True, metavar="X.Y[.Z]",
                     help="the host's CPython (X.Y picks the version hosts ship, e.g. 3.13 -> 3.13.5)")
    cmd.add_argument("--machine", required=True, metavar="|".join(MACHINES), help="the host's uname -m")
    cmd.add_argument("--glibc", metavar="2.N", help="the host's glibc (default 2.34: any supported host)")
    cmd.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder of wheel sets")
    cmd.set_defaults(func=cmd_wheels)


def cmd_wheels(args) -> int:
    from mailagent.control import wheels  # needs the deploy extra (packaging): imported when used

    try:
        target, notes = parse_target(args.python, args.machine, args.glibc)
    except UnsupportedTarget as exc:
        print(f"mailagent wheels: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(note)
    started = time.monotonic()
    try:
        built = wheels.build_set(wheels.agent_spec(), target)
    except UnsupportedTarget as exc:
        print(f"mailagent wheels: {exc}", file=sys.stderr)
        return 2
    except wheels.ResolutionFailed as exc:
        print(f"mailagent wheels: {exc}", file=sys.stderr)
        return 1
    dest = publish(built.folder, args.out / target.key)
    print(f"wheel set for {target.describe()}: {dest} ({len(built.files)} wheels, "
          f"{time.monotonic() - started:.1f} s)")
    return 0


def publish(source: Path, dest: Path) -> Path:
    """Copy the set to `dest`, replacing an older one there only once the copy is complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir() and (dest / "MANIFEST").is_file() and \
            (dest / "MANIFEST").read_bytes() == (source / "MANIFEST").read_bytes():
        return dest
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        copy = shutil.copytree(source, tmp / "set")
        if dest.exists():
            dest.rename(tmp / "old")
        Path(copy).rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
