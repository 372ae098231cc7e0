"""Lab VMs: QEMU processes on copy-on-write overlays of the cached image, reached over SSH.

Each VM runs daemonized (`-daemonize -pidfile`), with user-mode networking: its SSH and SMTP
ports are forwarded from 127.0.0.1 on the host, and it sees the host's loopback as 10.0.2.2.
`kill_hard` and `boot` let tests pull the plug on a VM and bring it back on the same disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from mailagent.lab import collector_daemon, image as lab_image, paths, ssh
from mailagent.lab import sink as lab_sink
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


def image_of(entry: dict) -> Image:
    """The image a VM runs on: its key lives in the image's cache folder."""
    return Image(Path(entry["ssh_key"]).parent)


def pidfile(state: dict, name: str) -> Path:
    return Path(state["lab_dir"]) / f"{name}.pid"


HUB_PORTS = (1587, 1465)


def qemu_command(state: dict, name: str) -> list[str]:
    """The QEMU command line for VM `name` (pure: reads nothing)."""
    entry = lab_state.host(state, name)
    image, accel = image_of(entry), state["accel"]
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


def plan(hosts: int, hub: bool, debian: str | None = None,
         extra_hosts: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(name, group, Debian version) of every VM: relay1..N and hub on `debian`, then each of
    `extra_hosts` ({name: version}, group relays) on its own release. Raises ValueError."""

    main = lab_image.suite(debian).version
    names = [(name, group, main) for name, group in host_names(hosts, hub)]
    names += [(name, "relays", lab_image.suite(version).version) for name, version in (extra_hosts or {}).items()]
    seen = [name for name, _, _ in names]
    if len(set(seen)) != len(seen):
        raise ValueError(f"VM names must be distinct: {seen}")
    return names


def up(hosts: int = 2, hub: bool = False, sink: bool = True, progress: Progress = print,
       collector: bool = True, lab_dir: Path | None = None, timeout: float = BOOT_TIMEOUT,
       debian: str | None = None, extra_hosts: dict[str, str] | None = None) -> dict:
    """Bring a lab up (images, sink, collector, VMs booted in parallel until SSH answers).

    The VMs run Debian `debian` (default image.DEFAULT_DEBIAN), those in `extra_hosts`
    ({name: version}, e.g. {"old1": "12"}) their own release, in the same groups, sink and
    collector. A lab left behind that is not wholly running (dead VMs, an older state format)
    is cleaned away first; a running one is an error. On any failure everything started so
    far is stopped again before the error propagates.
    """

    folder = Path(lab_dir or paths.lab_dir()).absolute()
    wanted = plan(hosts, hub, debian, extra_hosts)
    if _left_behind(folder):
        if healthy(folder):
            raise LabError(f"a lab is already up in {folder}; `mailagent lab down` first")
        progress(f"found a stale lab in {folder}: cleaning it away")
        clean(folder, progress)
    images = _images({version for _, _, version in wanted}, progress)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"lab_dir": str(folder), "accel": choose_accel(), "gateway": paths.GATEWAY,
             "hosts": [], "sink": None, "collector": None}
    lab_state.save(state)
    try:
        if sink:
            state["sink"] = lab_sink.spawn(folder)
            lab_state.save(state)
            progress(f"sink: up on {state['sink'].get('bind')} ports {state['sink'].get('ports')}")
        if collector:
            state["collector"] = collector_daemon.spawn(folder / "collector")
            lab_state.save(state)
            progress(f"collector: up at {state['collector']['url']} (guests: port "
                     f"{state['collector']['port']} on {paths.GATEWAY})")
        _launch_all(state, wanted, images, progress)
        _wait_all(state, [name for name, _, _ in wanted], timeout, progress)
    except BaseException:
        progress("lab up failed: stopping what was started")
        try:
            down(folder, progress=lambda _msg: None)
        except Exception as exc:  # keep the original error; say what is left
            progress(f"lab down after the failure: {exc}")
        raise
    return state


def add_hosts(state: dict, extra_hosts: dict[str, str], progress: Progress = print,
              timeout: float = BOOT_TIMEOUT) -> list[str]:
    """Boot more relay VMs ({name: Debian version}) into a running lab; returns their names.

    They share the lab's sink and collector. On failure the new VMs are removed again.
    """
    wanted = plan(0, False, None, extra_hosts)
    taken = {e["name"] for e in state["hosts"]} & set(extra_hosts)
    if taken:
        raise LabError(f"the lab already has VMs named {sorted(taken)}")
    images = _images({version for _, _, version in wanted}, progress)
    names = [name for name, _, _ in wanted]
    try:
        _launch_all(state, wanted, images, progress)
        _wait_all(state, names, timeout, progress)
    except BaseException:
        remove_hosts(state, [n for n in names if any(e["name"] == n for e in state["hosts"])])
        raise
    return names


def remove_hosts(state: dict, names: Iterable[str], progress: Progress = lambda _m: None) -> None:
    """Stop VMs `names`, delete their overlays and drop them from the lab's state."""
    for name in list(names):
        entry = lab_state.host(state, name)
        stop(state, name)
        Path(entry["overlay"]).unlink(missing_ok=True)
        state["hosts"].remove(entry)
        lab_state.save(state)
        progress(f"{name}: stopped and removed")


def _images(versions: set[str], progress: Progress) -> dict:

    # One at a time: each build keeps both cores busy.
    return {version: lab_image.ensure_image(version, progress) for version in sorted(versions)}


def _launch_all(state: dict, wanted: list[tuple[str, str, str]], images: dict, progress: Progress) -> None:
    """Start every VM of `wanted` at once (they boot in parallel; _wait_all waits for them)."""

    folder = Path(state["lab_dir"])
    taken = [p for e in state["hosts"] for p in (e["ssh_port"], e["smtp_port"])]
    ports = free_ports(2 * len(wanted), taken)
    for index, (name, group, version) in enumerate(wanted):
        image = images[version]
        entry = {"name": name, "group": group, "os": lab_image.suite(version).os_info(),
                 "ssh_key": str(image.ssh_key), "ssh_host": "127.0.0.1",
                 "ssh_port": ports[2 * index], "smtp_port": ports[2 * index + 1], "pid": None,
                 "overlay": str(folder / f"{name}.qcow2"), "serial_log": str(folder / f"{name}.serial.log")}
        create_overlay(image, Path(entry["overlay"]))
        Path(entry["serial_log"]).unlink(missing_ok=True)
        state["hosts"].append(entry)
        start(state, name)
        lab_state.save(state)
        progress(f"{name}: booting Debian {version} ({state['accel']}, pid {entry['pid']}, "
                 f"ssh 127.0.0.1:{entry['ssh_port']})")


def _wait_all(state: dict, names: list[str], timeout: float, progress: Progress) -> None:

    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        waits = {pool.submit(wait_for_ssh, state, name, timeout, progress): name for name in names}
        for done in as_completed(waits):
            name = waits[done]
            progress(f"{name}: ssh up on 127.0.0.1:{lab_state.host(state, name)['ssh_port']} "
                     f"after {done.result():.0f}s")


def _left_behind(folder: Path) -> bool:
    """True when `folder` holds anything of a lab that was not taken down (or only partly)."""
    parts = (lab_state.state_path(folder), folder / "sink", folder / "collector")
    return any(p.exists() for p in parts) or any(folder.glob("*.qcow2"))


def healthy(lab_dir: Path | None = None) -> bool:
    """True when the lab's state loads and every VM, the sink and the collector it names run."""
    try:
        state = lab_state.load(lab_dir)
    except lab_state.LabNotRunning:
        return False
    vms = all(is_running(e["pid"], e["overlay"]) for e in state["hosts"])
    sink = not state["sink"] or lab_sink.status(Path(state["lab_dir"])).get("running", False)
    collector = not state["collector"] or _collector_alive(Path(state["lab_dir"]) / "collector")
    return vms and bool(sink) and collector


def matches(state: dict, hosts: int, hub: bool, debian: str | None = None,
            extra_hosts: dict[str, str] | None = None) -> bool:
    """True when a lab's VMs are exactly `plan(...)`'s, on the current recipe's images."""

    have = [(e["name"], e["group"], e["os"]["version"], e["ssh_key"]) for e in state["hosts"]]
    want = [(name, group, version, str(lab_image.image_for(version).ssh_key))
            for name, group, version in plan(hosts, hub, debian, extra_hosts)]
    return have == want


def down(lab_dir: Path | None = None, progress: Progress = print) -> None:
    """Stop exactly what the lab's state says was started, then remove the lab's state: overlays,
    state file, the collector's database and the sink's store (a next lab starts from nothing;
    agents on new VMs make new keys, which an old collector database would refuse).

    A part that will not stop does not keep the others running; the state is then kept (with
    what is still up) so `down` can be run again, and VMError lists what failed. An unreadable
    state (another version, half written) is cleaned away like a stale lab.
    """
    try:
        state = lab_state.load(lab_dir)
    except lab_state.LabNotRunning:
    
        folder = Path(lab_dir or paths.lab_dir())
        if not lab_state.state_path(folder).exists():
            raise
        clean(folder, progress)
        return
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
    errors += _stop_services(Path(state["lab_dir"]), progress)
    if errors:
        raise VMError("lab down left things running: " + "; ".join(errors))
    _forget(Path(state["lab_dir"]))


def clean(lab_dir: Path, progress: Progress = print) -> None:
    """Stop whatever a lab left behind in `lab_dir` whatever its state file says (or whether it
    can be read at all), then forget it. Processes are found by their command lines naming the
    lab folder, so only the lab's own are signalled."""
    folder = Path(lab_dir).absolute()
    for pid, overlay in _lab_qemus(folder):
        entry = {"name": Path(overlay).stem, "pid": pid, "overlay": overlay}
        stop({"lab_dir": str(folder), "hosts": [entry]}, entry["name"])
        progress(f"{entry['name']}: stopped (pid {pid})")
    errors = _stop_services(folder, progress)
    if errors:
        raise VMError("cleaning the stale lab left things running: " + "; ".join(errors))
    _forget(folder)


def _lab_qemus(folder: Path) -> list[tuple[int, str]]:
    """(pid, overlay) of live QEMUs whose disk is an overlay in `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith("qemu-system-x86_64"):
            continue
        for arg in argv:
            disk = arg.partition("file=")[2].split(",")[0]
            if disk.endswith(".qcow2") and Path(disk).parent == folder:
                found.append((int(proc.name), disk))
    return found


def _stop_services(folder: Path, progress: Progress) -> list[str]:
    errors = []
    if (folder / "sink").exists():
        try:
            lab_sink.stop(folder)
            progress("sink: stopped")
        except Exception as exc:  # whatever the sink raises, report it with the rest
            errors.append(f"sink: {exc}")
    collector = folder / "collector"
    if (collector / "runtime.json").exists():
        try:
            if _collector_alive(collector):
                collector_daemon.stop(collector)
                progress("collector: stopped")
        except Exception as exc:  # as with the sink: report it with the rest
            errors.append(f"collector: {exc}")
    return errors


def _collector_alive(folder: Path) -> bool:
    """True when the collector recorded in `folder` runs (its pid is still that collector)."""

    try:
        pid = json.loads((folder / "runtime.json").read_text())["pid"]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return False
    return b"collector" in argv and str(folder / "collector.toml").encode() in argv


def _forget(folder: Path) -> None:
    """Remove what a stopped lab kept: state, overlays, pidfiles, sink and collector folders.
    Serial logs stay for the post-mortem (the next lab overwrites them)."""

    lab_state.remove(folder)
    for path in (folder / "sink", folder / "collector"):
        shutil.rmtree(path, ignore_errors=True)
    for pattern in ("*.qcow2", "*.pid"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
