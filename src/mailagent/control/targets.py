"""Which interpreter, machine and C library a wheel set is built for.

    WheelTarget(python="3.13.5", machine="aarch64", glibc=(2, 41)).key
        == "cpython3.13.5-aarch64-glibc2.41"

The full Python version matters: pip's `--python-version 3.9` means 3.9.0, and a marker such as
`python_full_version != "3.9.0"` then quietly picks an older release.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass

MACHINES = ("x86_64", "aarch64")
PYTHONS = ((3, 10), (3, 13))  # the oldest and newest minor versions a set can be built for
MIN_GLIBC = (2, 28)
# The glibc every supported host has (RHEL 9 and Amazon Linux 2023 have 2.34): a set built for
# it runs on every newer one.
DEFAULT_GLIBC = (2, 34)
# The full version of each minor that hosts ship, for `--python 3.13` without a patch level.
SHIPPED = {
    "3.10": ("3.10.12", "Ubuntu 22.04"),
    "3.11": ("3.11.2", "Debian 12"),
    "3.12": ("3.12.3", "Ubuntu 24.04"),
    "3.13": ("3.13.5", "Debian 13"),
}
FIRST_MANYLINUX = 17  # manylinux2014 is manylinux_2_17
_KEY = re.compile(r"cpython(\d+\.\d+\.\d+)-(\w+)-glibc(\d+)\.(\d+)")


class WheelError(Exception):
    """Base of the wheel builder's errors (the tree is drawn in wheels.py)."""


class UnsupportedTarget(WheelError, ValueError):
    """A target no wheel set can be built for; the message is one line saying why."""


@dataclass(frozen=True)
class WheelTarget:
    """CPython `python` (its full version) on `machine` Linux with glibc `glibc` or newer."""

    python: str
    machine: str
    glibc: tuple[int, int]

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise UnsupportedTarget(problem)

    @property
    def minor(self) -> tuple[int, int]:
        major, minor, _ = (int(n) for n in self.python.split("."))
        return major, minor

    @property
    def abi(self) -> str:
        return "cp%d%d" % self.minor

    @property
    def key(self) -> str:
        """The folder name of this target's sets: stable, readable, parsed back by from_key."""
        return f"cpython{self.python}-{self.machine}-glibc{self.glibc[0]}.{self.glibc[1]}"

    @property
    def platforms(self) -> list[str]:
        """pip `--platform` values: every manylinux level from 2_17 up to the target's glibc."""
        levels = [f"manylinux_2_{n}_{self.machine}" for n in range(FIRST_MANYLINUX, self.glibc[1] + 1)]
        return [f"manylinux2014_{self.machine}", *levels]

    def describe(self) -> str:
        return f"Python {self.python} on {self.machine}, glibc {self.glibc[0]}.{self.glibc[1]}"

    @classmethod
    def from_key(cls, key: str) -> WheelTarget | None:
        match = _KEY.fullmatch(key)
        if not match:
            return None
        try:
            return cls(match[1], match[2], (int(match[3]), int(match[4])))
        except UnsupportedTarget:
            return None

    @classmethod
    def local(cls) -> WheelTarget:
        """This machine's own interpreter (for sets installed here, e.g. in tests and benches)."""
        libc, version = platform.libc_ver()
        if libc != "glibc":
            raise UnsupportedTarget(f"this machine's C library is {libc or 'unknown'}, not glibc")
        glibc = tuple(int(n) for n in version.split(".")[:2])
        return cls(platform.python_version(), platform.machine(), glibc)


def _problem(target: WheelTarget) -> str | None:
    if not re.fullmatch(r"\d+\.\d+\.\d+", target.python):
        return f"Python {target.python!r}: expected a full version such as 3.13.5"
    minor = tuple(int(n) for n in target.python.split(".")[:2])
    if not PYTHONS[0] <= minor <= PYTHONS[1]:
        low, high = (".".join(map(str, v)) for v in PYTHONS)
        return f"Python {target.python}: the agent runs on CPython {low} to {high}"
    if target.machine not in MACHINES:
        return f"machine {target.machine!r}: expected one of {', '.join(MACHINES)}"
    if len(target.glibc) != 2 or target.glibc[0] != 2 or target.glibc < MIN_GLIBC:
        return (f"glibc {'.'.join(map(str, target.glibc))}: expected 2.N with N >= {MIN_GLIBC[1]}"
                " (manylinux wheels of the agent's dependencies need it)")
    return None


def parse_target(python: str, machine: str, glibc: str | None = None) -> tuple[WheelTarget, list[str]]:
    """The target for command-line values, and a note per value filled in (X.Y, no --glibc)."""
    notes = []
    if re.fullmatch(r"\d+\.\d+", python):
        if python not in SHIPPED:
            raise UnsupportedTarget(f"--python {python}: expected one of {', '.join(SHIPPED)} "
                                    "(or a full version X.Y.Z)")
        full, where = SHIPPED[python]
        notes.append(f"--python {python}: building for {full}, the version {where} ships "
                     "(give X.Y.Z for another)")
        python = full
    if glibc is None:
        notes.append(f"--glibc: {'.'.join(map(str, DEFAULT_GLIBC))}, the oldest supported hosts "
                     "have (the set works on every newer one)")
        level = DEFAULT_GLIBC
    elif re.fullmatch(r"\d+\.\d+", glibc):
        level = tuple(int(n) for n in glibc.split("."))
    else:
        raise UnsupportedTarget(f"--glibc {glibc}: expected a version such as 2.36")
    return WheelTarget(python, machine, level), notes
