"""Bench: the whole site on a Debian 13 (trixie) arm64 guest under qemu-system-aarch64 (TCG).

    nice -n 19 .venv/bin/python bench/arm64_lab.py [--cpu cortex-a57] [--smp 2] [--memory 1024]
                                                   [--tls starttls|implicit] [--image-only] [--keep]

One run, end to end, with a timing per phase:

  image        debootstrap an arm64 trixie tree (foreign architecture: binfmt_misc plus
               qemu-user-static run its binaries), configure it like the x86 lab image
               (mailagent.lab.image: guest files, lab key, predownloaded .debs, initramfs), and
               cache it in <cache dir>/arm64-trixie-<recipe hash>/ (a second run reuses it)
  boot         qemu-system-aarch64 -M virt, TCG, direct kernel boot, until SSH answers
  deploy       pyinfra deploy/site.py (relay + agent) with an inventory made the way the lab
               tests make theirs, pointed at this run's own sink and collector
  mail         sendmail on the guest -> the sink, which must record TLS and AUTH
  report       the guest's agent shows up at the collector's /api/v1/hosts

Everything this run starts is its own: a sink on free loopback ports (never the lab's fixed
2525/2587/2465), a collector on a free port, a VM with its own forwarded ports, all in a run
folder under /tmp. All of it is stopped at the end, on failure, and on Ctrl-C / SIGTERM / SIGHUP.
The run folder keeps the logs (serial console, pyinfra output, sink and collector logs); the
overlay disk, credentials and databases are removed (--keep leaves the VM and services up and
prints how to stop them).

The process lowers its own CPU and I/O priority (nice 19, idle I/O class) before anything else,
so every child (debootstrap, qemu, pip, pyinfra) inherits it, and also prefixes the heavy commands
with `nice -n 19 ionice -c3`.

The guest's Debian archive is the host's own, read at run time from its apt sources
(mailagent.lab.paths.host_mirrors); nothing here names one. Guest traffic goes to the host's
loopback only (QEMU user networking, 10.0.2.2).

Measured here (Debian 12 host, 2 cores shared with x86 lab runs, QEMU 7.2, all at nice 19):
image build 824 s from an empty arm64 .deb cache (debootstrap 701 s of it; the second stage
runs under qemu-user), reused afterwards; boot to SSH 36 to 132 s depending on the others'
load (-cpu cortex-a57, cortex-a53 and max,pauth-impdef=on within noise of each other; plain
`max` slower: its pointer authentication is costly under TCG); first deploy 234 to 348 s
(STARTTLS and implicit TLS runs); mail at the sink 3 s after sendmail; the agent's first
report a few seconds after the deploy ended.

Reused from the project (imported): mailagent.lab.image (guest files, configuration, key pair,
boot files, disk, recipe hash), mailagent.lab.vm (free ports, overlay, waiting for SSH, stop),
mailagent.lab.mail (send and find mail), mailagent.lab.sink and mailagent.lab.collector_daemon
(own instances), mailagent.lab.state (the state file inventories/lab.py reads) and
tests/lab/helpers.lab_inventory (the inventory, with this sink's port). Copied here, because
their parameters are fixed for x86: the debootstrap call (image._debootstrap hard-codes amd64
and the shared .deb cache) and the QEMU command line (vm.qemu_command is x86_64 only).
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import importlib.util
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mailagent.lab import image as lab_image  # noqa: E402
from mailagent.lab import mail as lab_mail  # noqa: E402
from mailagent.lab import paths, vm  # noqa: E402
from mailagent.lab import state as lab_state  # noqa: E402

NICE = ["nice", "-n", "19", "ionice", "-c3"]
SUITE = lab_image.suite("13")
ARCH = "arm64"
# Bump when the arm64 build steps below change in a way the recipe does not show.
ARM64_BUILD_VERSION = 1
PACKAGES = tuple("linux-image-arm64" if p == "linux-image-amd64" else p for p in lab_image.PACKAGES)
# The x86 image's initrd module list finds the virtio disk on `-M virt` too (virtio-blk-pci on
# the generic PCIe host, which the arm64 kernel has built in).
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_NAME = "qemu-aarch64"
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
VM_NAME = "arm1"


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


STARTED = time.monotonic()


class BenchError(RuntimeError):
    pass


class Stopped(BaseException):
    """SIGTERM or SIGHUP: unwind like Ctrl-C so the teardown runs."""


def lower_priority() -> None:
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    subprocess.run(["ionice", "-c3", "-p", str(os.getpid())], check=False)


# --- the arm64 image ------------------------------------------------------------------------


def recipe() -> dict:
    spec = lab_image.recipe(SUITE)
    spec.update(arch=ARCH, packages=sorted(SUITE.packages(PACKAGES)),
                arm64_build_version=ARM64_BUILD_VERSION, kernel="raw Image", getty="ttyAMA0")
    return spec


def image_folder() -> Path:
    return paths.cache_dir() / f"arm64-{SUITE.name}-{lab_image.recipe_hash(recipe())}"


class Binfmt:
    """Lets the host run aarch64 ELF binaries (in the debootstrap chroot) through
    qemu-aarch64-static; undoes what it did itself."""

    def __init__(self) -> None:
        self.mounted = self.registered = False

    def __enter__(self) -> "Binfmt":
        if not (BINFMT_DIR / "register").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], check=True)
            self.mounted = True
        entry = BINFMT_DIR / BINFMT_NAME
        if entry.exists():
            if "enabled" not in entry.read_text():
                raise BenchError(f"{entry} exists but is disabled; not touching another user's entry")
            say(f"binfmt: {BINFMT_NAME} already registered")
            return self
        if not BINFMT_CONF.exists():
            raise BenchError(f"{BINFMT_CONF} missing: apt-get install qemu-user-static")
        line = next(ln for ln in BINFMT_CONF.read_text().splitlines() if ln.startswith(":"))
        interpreter = line.split(":")[6]
        if not Path(interpreter).exists():
            raise BenchError(f"binfmt interpreter {interpreter} missing (qemu-user-static)")
        # The F flag opens the interpreter now, so it works inside the chroot too.
        (BINFMT_DIR / "register").write_text(line)
        self.registered = True
        say(f"binfmt: registered {BINFMT_NAME} ({interpreter}, flags {line.split(':')[-1]})")
        return self

    def __exit__(self, *exc) -> None:
        if self.registered and (BINFMT_DIR / BINFMT_NAME).exists():
            (BINFMT_DIR / BINFMT_NAME).write_text("-1")
            say(f"binfmt: unregistered {BINFMT_NAME}")
        if self.mounted:
            subprocess.run(["umount", str(BINFMT_DIR)], check=False)


def ensure_image(rebuild: bool = False) -> tuple[lab_image.Image, bool]:
    """(the cached arm64 image, whether it was built now)."""
    image = lab_image.Image(image_folder())
    if image.complete() and not rebuild:
        say(f"image: reusing {image.folder}")
        return image, False
    paths.cache_dir().mkdir(parents=True, exist_ok=True)
    with open(paths.cache_dir() / ".build-arm64.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("image: another process is building the arm64 image; waiting")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if image.complete() and not rebuild:
            return image, False
        # Not named .build-*: mailagent.lab.image removes those as stale when it builds.
        for stale in paths.cache_dir().glob("arm64-building-*"):
            lab_image._remove_tree(stale / "root")
            shutil.rmtree(stale, ignore_errors=True)
        build(image)
    return image, True


def build(image: lab_image.Image) -> None:
    if os.geteuid() != 0:
        raise BenchError("building the image needs root (debootstrap, chroot, binfmt_misc)")
    mirrors = paths.host_mirrors()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="arm64-building-", dir=paths.cache_dir()))
    log_path = tmp / "build.log"
    root = tmp / "root"
    try:
        with open(log_path, "w") as log, Binfmt():
            raw_run = lab_image._runner(log, log_path)

            def run(cmd: list[str], **kwargs) -> None:
                raw_run([*NICE, *cmd], **kwargs)

            say(f"image: debootstrap {SUITE.name} {ARCH} (log {log_path}; takes many minutes)")
            debs = paths.cache_dir() / "debs" / f"{SUITE.name}-{ARCH}"
            debs.mkdir(parents=True, exist_ok=True)
            run(["debootstrap", f"--arch={ARCH}", "--variant=minbase",
                 f"--include={','.join(SUITE.packages(PACKAGES))}", f"--cache-dir={debs}",
                 SUITE.name, str(root), mirrors.main])
            say(f"image: debootstrap done ({time.monotonic() - started:.0f}s)")
            lab_image._configure(run, root, mirrors, SUITE)
            # The x86 recipe enables a getty on ttyS0; the virt board's console is the PL011.
            chroot = ["chroot", str(root)]
            run([*chroot, "systemctl", "disable", "serial-getty@ttyS0.service"], env=lab_image.CHROOT_ENV)
            run([*chroot, "systemctl", "enable", "serial-getty@ttyAMA0.service"], env=lab_image.CHROOT_ENV)
            lab_image._write_key_pair(tmp, root)
            lab_image._extract_boot_files(root, tmp)
            unpack_kernel(tmp / "vmlinuz")
            say(f"image: guest configured ({time.monotonic() - started:.0f}s)")
            lab_image._make_disk(run, root, tmp)
        lab_image._remove_tree(root)
        (tmp / "recipe.json").write_text(json.dumps(recipe(), indent=2) + "\n")
        shutil.rmtree(image.folder, ignore_errors=True)
        os.rename(tmp, image.folder)
    except BaseException:
        lab_image._remove_tree(root)
        if log_path.exists():
            shutil.copy(log_path, paths.cache_dir() / "last-failed-arm64-build.log")
            say(f"image: build failed; log kept in {paths.cache_dir() / 'last-failed-arm64-build.log'}")
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"image: built in {time.monotonic() - started:.0f}s: {image.folder}")


def unpack_kernel(path: Path) -> None:
    """Leave a raw arm64 Image at `path`: Debian's vmlinuz may be gzip'd or an EFI zboot image."""
    data = path.read_bytes()
    kind = "raw"
    if data[:2] == b"\x1f\x8b":
        data, kind = gzip.decompress(data), "gzip"
    elif data[:2] == b"MZ" and data[4:8] == b"zimg":
        offset, size = struct.unpack_from("<II", data, 8)
        compression = data[24:32].rstrip(b"\0").decode()
        if compression != "gzip":
            raise BenchError(f"EFI zboot kernel compressed with {compression}: cannot unpack it here")
        data, kind = zlib.decompress(data[offset:offset + size], 16 + zlib.MAX_WBITS), "zboot+gzip"
    if data[56:60] != b"ARM\x64":
        raise BenchError(f"{path} ({kind}) is not an arm64 Image after unpacking")
    path.write_bytes(data)
    say(f"image: kernel was {kind}; raw Image {len(data) // 1024} KiB")


# --- the run ----------------------------------------------------------------------------------


class Run:
    """Everything one bench run started, so teardown stops exactly that."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state: dict | None = None
        self.sink_started = False
        self.collector_dir: Path | None = None
        self.child: subprocess.Popen | None = None
        self.mail_split = (0.0, 0.0)

    def teardown(self) -> None:
        from mailagent.lab import collector_daemon as daemon
        from mailagent.lab import sink

        if self.child and self.child.poll() is None:
            say(f"stopping pyinfra (pid {self.child.pid})")
            self.child.terminate()
            try:
                self.child.wait(20)
            except subprocess.TimeoutExpired:
                self.child.kill()
        if self.state and self.state["hosts"]:
            entry = self.state["hosts"][0]
            _stop(f"{entry['name']}: QEMU", lambda: vm.stop(self.state, entry["name"]))
            Path(entry["overlay"]).unlink(missing_ok=True)
        if self.sink_started:
            _stop("sink", lambda: sink.stop(self.folder))
        if self.collector_dir:
            _stop("collector", lambda: daemon.stop(self.collector_dir))
        # Keep the logs; drop what holds secrets or is big.
        lab_state.remove(self.folder)
        for secret in ("sink/credentials.json", "sink/ca/ca.key", "sink/tls/key.pem"):
            (self.folder / secret).unlink(missing_ok=True)
        if self.collector_dir:
            for name in ("collector.toml", "token", "admin-token", "collector.db"):
                (self.collector_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.collector_dir / "ca", ignore_errors=True)
            shutil.rmtree(self.collector_dir / "tls", ignore_errors=True)
        for inventory in self.folder.glob("inventory_*.py"):
            inventory.unlink()


def qemu_command(entry: dict, image: lab_image.Image, args) -> list[str]:
    fwd = (f"hostfwd=tcp:{entry['ssh_host']}:{entry['ssh_port']}-:22,"
           f"hostfwd=tcp:{entry['ssh_host']}:{entry['smtp_port']}-:25")
    return [
        *NICE, "qemu-system-aarch64", "-name", entry["name"], "-M", "virt", "-cpu", args.cpu,
        "-accel", "tcg,thread=multi", "-smp", str(args.smp), "-m", str(args.memory),
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", f"root=/dev/vda rw console=ttyAMA0 systemd.hostname={entry['name']}",
        "-drive", f"file={entry['overlay']},if=none,id=hd0,format=qcow2",
        "-device", "virtio-blk-pci,drive=hd0",
        "-netdev", f"user,id=net0,{fwd}", "-device", "virtio-net-pci,netdev=net0",
        "-device", "virtio-rng-pci",
        "-chardev", f"file,id=serial0,path={entry['serial_log']}", "-serial", "chardev:serial0",
        "-display", "none", "-monitor", "none",
    ]


def load_helpers():
    spec = importlib.util.spec_from_file_location("lab_helpers", ROOT / "tests" / "lab" / "helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def boot(run: Run, image: lab_image.Image, args) -> float:
    ssh_port, smtp_port = vm.free_ports(2)
    entry = {"name": VM_NAME, "group": "relays", "os": SUITE.os_info(), "ssh_key": str(image.ssh_key),
             "ssh_host": "127.0.0.1", "ssh_port": ssh_port, "smtp_port": smtp_port, "pid": None,
             "overlay": str(run.folder / f"{VM_NAME}.qcow2"),
             "serial_log": str(run.folder / f"{VM_NAME}.serial.log")}
    vm.create_overlay(image, Path(entry["overlay"]))
    run.state["hosts"].append(entry)
    command = qemu_command(entry, image, args)
    started = time.monotonic()
    (run.folder / "qemu.cmd").write_text(" ".join(command) + "\n")
    qemu_log = open(run.folder / "qemu.log", "wb")
    # Its own session: a Ctrl-C reaches this script, whose teardown then stops QEMU.
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    entry["pid"] = proc.pid  # nice and ionice exec, so this becomes QEMU's pid
    lab_state.save(run.state)
    say(f"{VM_NAME}: booting (pid {proc.pid}, -cpu {args.cpu}, -smp {args.smp}, -m {args.memory}, "
        f"ssh 127.0.0.1:{ssh_port}; serial {entry['serial_log']})")
    time.sleep(1)  # let nice/ionice exec qemu before is_running looks at the command line
    try:
        vm.wait_for_ssh(run.state, VM_NAME, timeout=args.boot_timeout, progress=say)
    except vm.VMError as exc:
        raise BenchError(f"boot: {exc}\nqemu output: {(run.folder / 'qemu.log').read_text()[-2000:]}") from None
    # wait_for_ssh's own figure is taken before its last (successful) login, which is slow here.
    return time.monotonic() - started


def deploy(run: Run, args) -> float:
    helpers = load_helpers()
    sink_info = run.state["sink"]
    port = sink_info["ports"][args.tls][0]
    inventory = helpers.lab_inventory(run.state, run.folder,
                                      overrides={VM_NAME: {"port": port, "tls": args.tls}})
    relay = json.loads(json.dumps({k: v for k, v in _inventory_relay(inventory).items()
                                   if k not in ("password", "ca_pem")}))
    say(f"deploy: relay profile {relay}")
    command = [*NICE, str(ROOT / ".venv/bin/pyinfra"), "-y", str(inventory), "deploy/site.py"]
    log_path = run.folder / "deploy.log"
    say(f"deploy: $ {' '.join(command)}  (output: {log_path})")
    started = time.monotonic()
    with open(log_path, "w") as log:
        run.child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, MAILAGENT_LAB_DIR=str(run.folder)))
        next_note = started
        while (rc := run.child.poll()) is None:
            time.sleep(2)
            if time.monotonic() > started + args.deploy_timeout:
                run.child.terminate()
                raise BenchError(f"deploy: no end after {args.deploy_timeout:.0f}s (log {log_path})")
            if time.monotonic() > next_note + 60:
                next_note = time.monotonic()
                say(f"deploy: {time.monotonic() - started:.0f}s: {_last_line(log_path)}")
    run.child = None
    took = time.monotonic() - started
    if rc != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-60:])
        raise BenchError(f"deploy: pyinfra exited {rc} after {took:.0f}s; log tail:\n{tail}")
    return took


def _inventory_relay(inventory: Path) -> dict:
    namespace: dict = {}
    exec(compile(inventory.read_text(), str(inventory), "exec"), namespace)  # our own file
    return dict(namespace["relays"][0][1]["relay"])


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return (lines[-1] if lines else "(no output yet)")[:120]


def send_mail(run: Run, args) -> tuple[float, dict]:
    started = time.monotonic()
    message_id = lab_mail.send_mail(run.state, VM_NAME, subject=f"mailagent arm64 bench from {VM_NAME}")
    handed = time.monotonic()
    say(f"mail: sent {message_id} (sendmail over SSH took {handed - started:.1f}s); waiting for the sink")
    found = lab_mail.wait_received(run.state, [message_id], timeout=args.mail_timeout)[message_id]
    took = time.monotonic() - started
    run.mail_split = (handed - started, time.monotonic() - handed)
    if not found:
        rc, out, err = _ssh(run, "postqueue -p; journalctl -u postfix --no-pager -n 30")
        raise BenchError(f"mail: not at the sink after {took:.0f}s; guest queue and log:\n{out}{err}")
    record = found[0]
    if not (record.get("tls") and record.get("auth_user")):
        raise BenchError(f"mail: arrived without TLS or AUTH: {record}")
    return took, record


def _ssh(run: Run, command: str) -> tuple[int, str, str]:
    from mailagent.lab import ssh

    try:
        return ssh.run(run.state, VM_NAME, command, timeout=120)
    except Exception as exc:
        return 1, "", f"(ssh failed: {exc})"


class ReportWatch(threading.Thread):
    """Polls the collector's /api/v1/hosts from the start of the deploy (the agent starts, and
    may report, before pyinfra is done), noting when VM_NAME first has a report."""

    def __init__(self, collector: dict) -> None:
        super().__init__(daemon=True)
        self.collector, self.seen_at, self.host, self.error = collector, None, None, None
        self.found, self.stop = threading.Event(), threading.Event()

    def run(self) -> None:
        import httpx

        while not self.stop.is_set():
            try:
                listing = httpx.get(self.collector["url"] + "/api/v1/hosts",
                                    verify=self.collector["ca_cert"], timeout=10).json()
                mine = [h for h in listing.get("hosts", []) if h.get("host") == VM_NAME and h.get("last_seen")]
            except Exception as exc:  # keep polling; say the last error if it never shows up
                self.error, mine = repr(exc), []
            if mine:
                self.seen_at, self.host = time.monotonic(), mine[0]
                self.found.set()
                return
            self.stop.wait(2)


def first_report(run: Run, watch: ReportWatch, args) -> dict:
    if not watch.found.wait(args.report_timeout):
        watch.stop.set()
        rc, out, err = _ssh(run, "systemctl status mailagent --no-pager; journalctl -u mailagent --no-pager -n 40")
        raise BenchError(f"report: {VM_NAME} not at the collector {args.report_timeout:.0f}s after the mail "
                         f"(last poll error: {watch.error}); agent on the guest:\n{out}{err}")
    return watch.host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", default="cortex-a57", help="QEMU -cpu (cortex-a57, cortex-a53, max, ...)")
    parser.add_argument("--smp", type=int, default=2)
    parser.add_argument("--memory", type=int, default=1024, help="MiB")
    parser.add_argument("--tls", choices=("starttls", "implicit"), default="starttls",
                        help="the sink port the relay uses")
    parser.add_argument("--boot-timeout", type=float, default=1800)
    parser.add_argument("--deploy-timeout", type=float, default=3600)
    parser.add_argument("--mail-timeout", type=float, default=600)
    parser.add_argument("--report-timeout", type=float, default=900)
    parser.add_argument("--image-only", action="store_true", help="build (or find) the image and stop")
    parser.add_argument("--boot-only", action="store_true", help="stop after the VM answers SSH")
    parser.add_argument("--rebuild", action="store_true", help="build the image even if cached")
    parser.add_argument("--keep", action="store_true", help="leave the VM, sink and collector running")
    parser.add_argument("--run-dir", type=Path, help="default: a new /tmp/mailagent-arm64-lab-*")
    args = parser.parse_args(argv)

    lower_priority()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_stopped)
    timings: dict[str, str] = {}
    outcome = {"mail": "not tried", "report": "not tried"}
    run = None
    ok = False
    try:
        started = time.monotonic()
        image, built = ensure_image(args.rebuild)
        timings["image"] = f"{time.monotonic() - started:.0f}s ({'built' if built else 'cached'})"
        if args.image_only:
            ok = True
            return 0
        from mailagent.lab import collector_daemon as daemon
        from mailagent.lab import sink

        folder = args.run_dir or Path(tempfile.mkdtemp(prefix="mailagent-arm64-lab-"))
        folder = folder.absolute()
        folder.mkdir(parents=True, exist_ok=True)
        run = Run(folder)
        say(f"run folder: {folder}")
        run.state = {"version": 2, "lab_dir": str(folder), "accel": "tcg", "gateway": paths.GATEWAY,
                     "hosts": [], "sink": None, "collector": None}
        # Port 0: free ports, never the lab's fixed 2525/2587/2465.
        run.sink_started = True
        run.state["sink"] = sink.spawn(folder, starttls_ports=(0,), implicit_ports=(0,))
        say(f"sink: own instance on 127.0.0.1 ports {run.state['sink']['ports']} (pid {run.state['sink']['pid']})")
        run.collector_dir = folder / "collector"
        run.state["collector"] = daemon.spawn(run.collector_dir)
        say(f"collector: own instance at {run.state['collector']['url']} (pid {run.state['collector']['pid']})")
        lab_state.save(run.state)

        took = boot(run, image, args)
        timings["boot to SSH"] = f"{took:.0f}s"
        say(f"{VM_NAME}: SSH up after {took:.0f}s")
        rc, out, _ = _ssh(run, "uname -m; . /etc/os-release; echo $PRETTY_NAME; nproc; systemd-analyze | head -1")
        say(f"{VM_NAME}: {' | '.join(out.split(chr(10))).strip(' |')}")
        if args.boot_only:
            ok = True
            return 0

        watch = ReportWatch(run.state["collector"])
        deploy_started = time.monotonic()
        watch.start()
        took = deploy(run, args)
        deployed = time.monotonic()
        timings["first deploy"] = f"{took:.0f}s"
        say(f"deploy: done in {took:.0f}s")

        took, record = send_mail(run, args)
        timings["mail delivered"] = (f"{took:.1f}s (sendmail over SSH {run.mail_split[0]:.1f}s, then "
                                     f"{run.mail_split[1]:.1f}s to the sink; polled every 1s)")
        outcome["mail"] = (f"arrived on port {record.get('port')} {record.get('tls_version')}, AUTH "
                           f"{record.get('auth_user')} ({record.get('auth_mechanism')}) from {record.get('peer')}")
        say(f"mail: {outcome['mail']} after {took:.1f}s")

        host = first_report(run, watch, args)
        before = deployed - watch.seen_at
        timings["first report"] = (f"{watch.seen_at - deploy_started:.0f}s after the deploy started ("
                                   + (f"{before:.0f}s before it ended)" if before >= 0
                                      else f"{-before:.0f}s after it ended)"))
        outcome["report"] = (f"{VM_NAME} last_seen {host.get('last_seen')}, role {host.get('role')}, "
                             f"queue {host.get('queue')}, open alerts "
                             f"{[a.get('kind') for a in host.get('open_alerts') or []]}")
        say(f"report: {outcome['report']}")
        ok = True
        return 0
    except (BenchError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        say(f"FAILED: {exc}")
        return 1
    except (KeyboardInterrupt, Stopped) as exc:
        say(f"interrupted ({type(exc).__name__}): tearing down")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if run and not args.keep:
            run.teardown()
        elif run:
            say(f"--keep: left running; stop QEMU pid {run.state['hosts'][0]['pid'] if run.state['hosts'] else '-'}, "
                f"sink pid {run.state['sink']['pid'] if run.state['sink'] else '-'}, "
                f"collector pid {run.state['collector']['pid'] if run.state['collector'] else '-'}")
        print("\n== arm64 lab bench: " + ("passed" if ok else "FAILED"))
        for phase, value in timings.items():
            print(f"  {phase:<15} {value}")
        for what, value in outcome.items():
            print(f"  {what:<15} {value}")
        if run:
            print(f"  logs           {run.folder}")


def _raise_stopped(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


def _stop(what: str, stop) -> None:
    """Stop one part of the run; a failure is said and the teardown goes on with the rest."""
    try:
        stop()
        say(f"{what}: stopped")
    except Exception as exc:  # go on with the rest
        say(f"{what}: stopping failed: {exc}")


if __name__ == "__main__":
    sys.exit(main())
