"""Lab VMs: QEMU processes on copy-on-write overlays of the cached image, reached over SSH.

Each VM runs daemonized (`-daemonize -pidfile`), with user-mode networking: its SSH and SMTP
ports are forwarded from 127.0.0.1 on the host, and it sees the host's loopback as 10.0.2.2.
`kill_hard` and `boot` let tests pull the plug on a VM and bring it back on the same disk.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mailagent.lab import ssh
from mailagent.lab import state as lab_state
from mailagent.lab.image import Image

Progress = Callable[[str], None]
BOOT_TIMEOUT = 600.0
HEARTBEAT = 30.0
# KVM guests are fast enough with less; TCG guests page a lot during apt runs.
MEMORY_MB = {"kvm": 512, "tcg": 768}


class VMError(RuntimeError):
    """A VM did not start, died, or did not answer SSH in time (with its serial log tail)."""


def choose_accel(env: dict | None = None, sys_root: Path = Path("/")) -> str:
    """"kvm" or "tcg": MAILAGENT_LAB_ACCEL wins; otherwise KVM only when it is usable and sane.

    Under kvm-pvm (a paravirtual KVM some cloud machines expose as /dev/kvm) a stock guest
    kernel hangs at boot, and telling that apart takes a full boot, so it means TCG.
    """
    env = os.environ if env is None else env
    forced = env.get("MAILAGENT_LAB_ACCEL", "").strip().lower()
    if forced in ("tcg", "kvm"):
        return forced
    kvm = sys_root / "dev/kvm"
    if not kvm.exists() or not os.access(kvm, os.R_OK | os.W_OK):
        return "tcg"
    if (sys_root / "sys/module/kvm_pvm").exists():
        return "tcg"
    return "kvm"


def free_ports(count: int, taken: Iterable[int] = ()) -> list[int]:
    """`count` distinct loopback TCP ports that are free now (and not in `taken`)."""
    ports: list[int] = []
    avoid = set(taken)
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            avoid.add(port)
            ports.append(port)
    return ports


def image_of(state: dict) -> Image:
    """The image a lab runs on: the lab key lives in the image's cache folder."""
    return Image(Path(state["ssh_key"]).parent)


def pidfile(state: dict, name: str) -> Path:
    return Path(state["lab_dir"]) / f"{name}.pid"


HUB_PORTS = (1587, 1465)


def qemu_command(state: dict, name: str) -> list[str]:
    """The QEMU command line for VM `name` (pure: reads nothing)."""
    entry = lab_state.host(state, name)
    image, accel = image_of(state), state["accel"]
    fwd = (f"hostfwd=tcp:{entry['ssh_host']}:{entry['ssh_port']}-:22,"
           f"hostfwd=tcp:{entry['ssh_host']}:{entry['smtp_port']}-:25")
    # The hub's submission ports sit on the host's loopback at the same numbers, so fleet guests
    # reach hub.lab.mailagent.test (the gateway) on them, like the sink's fixed ports.
    fwd += "".join(f",hostfwd=tcp:127.0.0.1:{port}-:{port}" for port in HUB_PORTS if entry["group"] == "hub")
    cpu = ["-cpu", "host,-arch-capabilities"] if accel == "kvm" else []
    return [
        "qemu-system-x86_64", "-name", name, "-accel", accel, *cpu,
        "-m", str(MEMORY_MB[accel]), "-smp", "1",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", f"root=/dev/vda rw console=ttyS0 systemd.hostname={name}",
        "-drive", f"file={entry['overlay']},if=virtio,format=qcow2",
        "-netdev", f"user,id=net0,{fwd}", "-device", "virtio-net-pci,netdev=net0",
        "-device", "virtio-rng-pci",
        # Appending keeps the log of a boot before a kill_hard for the post-mortem.
        "-chardev", f"file,id=serial0,path={entry['serial_log']},append=on", "-serial", "chardev:serial0",
        "-display", "none", "-monitor", "none",
        "-daemonize", "-pidfile", str(pidfile(state, name)),
    ]


def create_overlay(image: Image, overlay: Path) -> None:
    """A fresh copy-on-write disk for one VM, backed by the cached image."""
    overlay.unlink(missing_ok=True)
    done = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.disk), str(overlay)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise VMError(f"cannot create {overlay}: {done.stderr.strip()}")


def start(state: dict, name: str) -> int:
    """Launch VM `name`'s QEMU (it daemonizes once the VM runs); records and returns its PID."""
    entry = lab_state.host(state, name)
    pidfile(state, name).unlink(missing_ok=True)
    done = subprocess.run(qemu_command(state, name), capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise VMError(f"{name}: QEMU did not start (exit {done.returncode}): {done.stderr.strip()}")
    entry["pid"] = int(pidfile(state, name).read_text().strip())
    return entry["pid"]


def wait_for_ssh(state: dict, name: str, timeout: float = BOOT_TIMEOUT, progress: Progress | None = None) -> float:
    """Block until VM `name` runs commands over SSH; returns the seconds it took.

    With `progress`, says every HEARTBEAT seconds how far the boot got (last console line).
    """
    entry = lab_state.host(state, name)
    started = next_note = time.monotonic()
    while (elapsed := time.monotonic() - started) < timeout:
        if not is_running(entry["pid"], entry["overlay"]):
            raise VMError(f"{name}: QEMU exited while booting\n{serial_tail(entry)}")
        if ssh.answers(state, name, timeout=10):
            return elapsed
        if progress and time.monotonic() >= next_note + HEARTBEAT:
            next_note = time.monotonic()
            progress(f"{name}: booting, {elapsed:.0f}s: {_last_console_line(entry)}")
        time.sleep(2)
    raise VMError(f"{name}: no SSH on 127.0.0.1:{entry['ssh_port']} after {timeout:.0f}s\n{serial_tail(entry)}")


def serial_tail(entry: dict, lines: int = 30) -> str:
    """The end of a VM's serial console log, for error messages."""
    try:
        text = Path(entry["serial_log"]).read_text(errors="replace")
    except OSError as exc:
        return f"(no serial log: {exc})"
    tail = "\n".join(text.splitlines()[-lines:])
    return f"--- last {lines} lines of {entry['serial_log']} ---\n{tail}"


def _last_console_line(entry: dict) -> str:
    lines = serial_tail(entry, lines=5).splitlines()[1:]
    # Console lines carry colour codes and carriage returns; keep the words.
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", lines[-1] if lines else "").strip()
    return text[:100] or "(no console output yet)"


def is_running(pid: int | None, overlay: str) -> bool:
    """True when `pid` is alive and is the QEMU of this overlay (not a reused PID)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return status != "Z" and overlay.encode() in cmdline


def stop(state: dict, name: str, sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
    """Stop VM `name`'s QEMU with `sig` (SIGKILL after `grace` s) and wait until it is gone."""
    entry = lab_state.host(state, name)
    pid = entry["pid"]
    if is_running(pid, entry["overlay"]):
        os.kill(pid, sig)
        if not _wait_gone(pid, entry["overlay"], grace):
            os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, entry["overlay"], 10.0):
                raise VMError(f"{name}: QEMU (pid {pid}) did not exit after SIGKILL")
    entry["pid"] = None
    pidfile(state, name).unlink(missing_ok=True)


def _wait_gone(pid: int, overlay: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_running(pid, overlay):
            return True
        time.sleep(0.1)
    return not is_running(pid, overlay)


def kill_hard(state: dict, name: str) -> None:
    """Pull the plug: SIGKILL VM `name`'s QEMU (no guest shutdown, no flush), and record it."""
    stop(state, name, sig=signal.SIGKILL)
    lab_state.save(state)


def boot(state: dict, name: str, timeout: float = BOOT_TIMEOUT) -> float:
    """Boot VM `name` again on its existing overlay and ports; wait for SSH; update the state."""
    entry = lab_state.host(state, name)
    if is_running(entry["pid"], entry["overlay"]):
        raise VMError(f"{name}: already running (pid {entry['pid']})")
    start(state, name)
    lab_state.save(state)
    return wait_for_ssh(state, name, timeout)


# --- the whole lab ------------------------------------------------------------------------------


class LabError(RuntimeError):
    """The lab cannot be brought up as asked (already up, sink unavailable, ...)."""


def host_names(hosts: int, hub: bool) -> list[tuple[str, str]]:
    """(name, group) of the lab's VMs: relay1..relayN, then hub."""
    return [(f"relay{i}", "relays") for i in range(1, hosts + 1)] + ([("hub", "hub")] if hub else [])


def up(hosts: int = 2, hub: bool = False, sink: bool = True, progress: Progress = print,
       collector: bool = True,
       lab_dir: Path | None = None, timeout: float = BOOT_TIMEOUT) -> dict:
    """Bring a lab up (image, sink, VMs booted in parallel until SSH answers); returns its state.

    On any failure everything started so far is stopped again before the error propagates.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from mailagent.lab import image as lab_image, paths

    folder = Path(lab_dir or paths.lab_dir()).absolute()
    if lab_state.state_path(folder).exists():
        raise LabError(f"a lab is already up in {folder}; `mailagent lab down` first")
    sink_module = _sink_module() if sink else None
    image = lab_image.ensure_image(progress)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"lab_dir": str(folder), "ssh_key": str(image.ssh_key), "accel": choose_accel(),
             "gateway": paths.GATEWAY, "hosts": [], "sink": None, "collector": None}
    lab_state.save(state)
    try:
        if sink_module:
            state["sink"] = sink_module.spawn(folder)
            lab_state.save(state)
            progress(f"sink: up on {state['sink'].get('bind')} ports {state['sink'].get('ports')}")
        if collector:
            state["collector"] = _collector_module().spawn(folder / "collector")
            lab_state.save(state)
            progress(f"collector: up at {state['collector']['url']} (guests: port "
                     f"{state['collector']['port']} on {paths.GATEWAY})")
        _launch_all(state, hosts, hub, image, progress)
        with ThreadPoolExecutor(max_workers=len(state["hosts"]) or 1) as pool:
            waits = {pool.submit(wait_for_ssh, state, e["name"], timeout, progress): e for e in state["hosts"]}
            for done in as_completed(waits):
                entry = waits[done]
                progress(f"{entry['name']}: ssh up on 127.0.0.1:{entry['ssh_port']} after {done.result():.0f}s")
    except BaseException:
        progress("lab up failed: stopping what was started")
        try:
            down(folder, progress=lambda _msg: None)
        except Exception as exc:  # keep the original error; say what is left
            progress(f"lab down after the failure: {exc}")
        raise
    return state


def _launch_all(state: dict, hosts: int, hub: bool, image: Image, progress: Progress) -> None:
    folder = Path(state["lab_dir"])
    names = host_names(hosts, hub)
    ports = free_ports(2 * len(names))
    for index, (name, group) in enumerate(names):
        entry = {"name": name, "group": group, "ssh_host": "127.0.0.1",
                 "ssh_port": ports[2 * index], "smtp_port": ports[2 * index + 1], "pid": None,
                 "overlay": str(folder / f"{name}.qcow2"), "serial_log": str(folder / f"{name}.serial.log")}
        create_overlay(image, Path(entry["overlay"]))
        Path(entry["serial_log"]).unlink(missing_ok=True)
        state["hosts"].append(entry)
        start(state, name)
        lab_state.save(state)
        progress(f"{name}: booting ({state['accel']}, pid {entry['pid']}, ssh 127.0.0.1:{entry['ssh_port']})")


def down(lab_dir: Path | None = None, progress: Progress = print) -> None:
    """Stop exactly what the lab's state says was started, remove the overlays and the state.

    A part that will not stop does not keep the others running; the state is then kept (with
    what is still up) so `down` can be run again, and VMError lists what failed.
    """
    state = lab_state.load(lab_dir)
    errors = []
    for entry in state["hosts"]:
        try:
            stop(state, entry["name"])
        except (VMError, OSError) as exc:
            errors.append(str(exc))
            continue
        Path(entry["overlay"]).unlink(missing_ok=True)
        progress(f"{entry['name']}: stopped")
    lab_state.save(state)
    if state["sink"]:
        try:
            _sink_module().stop(Path(state["lab_dir"]))
            progress("sink: stopped")
        except Exception as exc:  # whatever the sink raises, report it with the rest
            errors.append(f"sink: {exc}")
    if state.get("collector"):
        try:
            _collector_module().stop(Path(state["lab_dir"]) / "collector")
            progress("collector: stopped")
        except Exception as exc:  # as with the sink: report it with the rest
            errors.append(f"collector: {exc}")
    if errors:
        raise VMError("lab down left things running: " + "; ".join(errors))
    lab_state.remove(state["lab_dir"])


def _sink_module():
    try:
        from mailagent.lab import sink
    except ImportError as exc:
        raise LabError(f"the smarthost sink is not available ({exc}); use --no-sink") from None
    return sink


def _collector_module():
    from mailagent.collector import daemon

    return daemon
