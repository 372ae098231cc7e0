"""The running lab's state file, `<lab dir>/state.json`: what `lab up` started, for everyone else.

Other code (inventories/lab.py, the sink, the demo, the end-to-end tests) reads it, so its shape
is fixed (version 2: each host has its own OS and key, so one lab can mix Debian releases):

    {"version": 2, "lab_dir": "...", "accel": "tcg", "gateway": "10.0.2.2",
     "hosts": [{"name": "relay1", "group": "relays",
                "os": {"id": "debian", "version": "13", "suite": "trixie"},
                "ssh_key": "/abs/trixie-<hash>/id_ed25519", "ssh_host": "127.0.0.1",
                "ssh_port": 40022, "smtp_port": 40025, "pid": 1234, "overlay": "...",
                "serial_log": "..."}],
     "sink": {...what mailagent.lab.sink.spawn returned...} or null,
     "collector": null}

Writes are atomic (temp file + os.replace) and the file is mode 600: it holds the sink's
password and the path of root's key to every VM. A state of another version (a lab from an
older recipe) does not load: `lab up` then cleans that lab away and starts a fresh one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailagent.fileio import write_atomic
from mailagent.lab import paths

STATE_FILE = "state.json"


class LabNotRunning(RuntimeError):
    """There is no lab state where we looked (or it is unreadable)."""


class OSState(BaseModel):
    """The release a VM's image was built from."""

    model_config = ConfigDict(extra="forbid")

    id: Literal["debian"] = Field("debian", description="os-release ID of the guest.")
    version: str = Field(description="Release number: 12, 13.")
    suite: str = Field(description="Release code name: bookworm, trixie.")


class HostState(BaseModel):
    """One VM of the lab."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="VM and inventory name, also its hostname: relay1, hub.")
    group: Literal["relays", "hub"] = Field(description="Inventory group the VM belongs to.")
    os: OSState = Field(description="The Debian release the VM runs.")
    ssh_key: str = Field(description="Private key that logs in as root (beside the VM's image).")
    ssh_host: str = Field(description="Loopback address QEMU forwards to the guest's port 22.")
    ssh_port: int = Field(description="Loopback port forwarded to the guest's SSH.")
    smtp_port: int = Field(description="Loopback port forwarded to the guest's port 25.")
    pid: int | None = Field(description="PID of the VM's QEMU process (null when not running).")
    overlay: str = Field(description="Copy-on-write qcow2 disk, backed by the cached image.")
    serial_log: str = Field(description="File receiving the guest's serial console.")


class LabState(BaseModel):
    """The whole lab, as written to state.json."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[2] = Field(2, description="State file format version.")
    lab_dir: str = Field(description="Absolute path of the lab folder.")
    accel: Literal["tcg", "kvm"] = Field(description="QEMU accelerator the VMs run with.")
    gateway: str = Field(paths.GATEWAY, description="Host loopback as seen from the guests.")
    hosts: list[HostState] = Field(default_factory=list, description="The VMs.")
    sink: dict[str, Any] | None = Field(None, description="The smarthost sink, or null.")
    collector: dict[str, Any] | None = Field(None, description="The collector, or null.")


def state_path(folder: Path | str | None = None) -> Path:
    return Path(folder or paths.lab_dir()) / STATE_FILE


def load(lab_dir: Path | str | None = None) -> dict:
    """The lab's state as a plain dict; LabNotRunning when there is none or it is unreadable."""
    path = state_path(lab_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabNotRunning(f"no lab is running ({path} does not exist); start one with `mailagent lab up`") from None
    except (OSError, ValueError) as exc:
        raise LabNotRunning(f"cannot read the lab state {path}: {exc}") from None
    try:
        return LabState.model_validate(raw).model_dump()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise LabNotRunning(f"the lab state {path} is not valid: {problems}") from None


def save(state: dict) -> Path:
    """Validate and write the state atomically (mode 600) into its own lab_dir."""
    data = LabState.model_validate(state).model_dump()
    path = state_path(data["lab_dir"])
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), 0o600)
    return path


def remove(lab_dir: Path | str | None = None) -> None:
    """Forget the lab (after everything in it was stopped)."""
    state_path(lab_dir).unlink(missing_ok=True)


def host(state: dict, name: str) -> dict:
    """The entry of VM `name`; KeyError listing the lab's VMs otherwise."""
    for entry in state["hosts"]:
        if entry["name"] == name:
            return entry
    known = ", ".join(h["name"] for h in state["hosts"]) or "none"
    raise KeyError(f"no VM named {name!r} in the lab (VMs: {known})")
