"""libvirtd in a network namespace of its own, unable to see /dev/kvm; torn down by PID.

Why each piece (reference/vagrant-feasibility.md has the measurements):
* the netns: libvirt's NAT networks, their dnsmasq and iptables rules and the VMs' addresses
  exist only there, so the host's own network is untouched and the guests have no route out.
  Vagrant, ssh and pyinfra run there too (`Netns.run`), as must anything the guests reach.
* a private mount namespace for libvirtd: /dev/kvm here is kvm-pvm, which hangs stock guest
  kernels, and libvirt re-probes QEMU for seconds on every call while it can see the device.
  A mode-000 file is bound over it, with `namespaces = [ ]` in a private qemu.conf (else starting
  a domain fails moving the device node). /etc/libvirt and /var/lib/libvirt are private copies
  in the run folder too, so networks, pools and leases defined in the netns never reach the host.

Started processes are recorded; `stop` destroys what libvirt still runs, signals every recorded
PID and then every process left in the namespace, and deletes the namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

LIBVIRT_URI = "qemu:///system"
STOP_TIMEOUT = 10.0
_LIBVIRTD = ("mount --bind \"$1\" /etc/libvirt && mount --bind \"$2\" /var/lib/libvirt && "
             "{ [ ! -e /dev/kvm ] || mount --bind \"$3\" /dev/kvm; } && exec /usr/sbin/libvirtd")


class NetnsError(RuntimeError):
    """The namespace or a daemon in it could not be set up."""


class Netns:
    """One network namespace with libvirtd, virtlogd and whatever else `spawn` starts in it."""

    def __init__(self, name: str, folder: Path):
        self.name = name
        self.folder = folder
        self._procs: list[subprocess.Popen] = []
        self._libvirtd: subprocess.Popen | None = None
        self._run_libvirt_existed = Path("/run/libvirt").exists()

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], timeout: float, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside the namespace, output captured as text."""
        done = subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout, **kwargs)
        if check and done.returncode != 0:
            raise NetnsError(f"{' '.join(argv)} failed (exit {done.returncode}):\n"
                             f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return done

    def spawn(self, argv: list[str], log_name: str, prefix: list[str] = ()) -> int:
        """Start a long-running process in the namespace, output to `<folder>/<log_name>`."""
        with open(self.folder / log_name, "ab") as log:
            proc = subprocess.Popen(self.argv([*prefix, *argv]), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs.append(proc)
        return proc.pid

    def start(self) -> None:
        """Create the namespace and start virtlogd and libvirtd in it; define the storage pool."""
        if Path("/run/libvirtd.pid").exists() and _pid_alive(_read_pid(Path("/run/libvirtd.pid"))):
            raise NetnsError("a libvirtd already runs on this machine (/run/libvirtd.pid); "
                             "the test needs its own")
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.run(["ip", "link", "set", "lo", "up"], timeout=10)
        etc, lib, fake_kvm = self._private_files()
        self.spawn(["/usr/sbin/virtlogd"], "virtlogd.log")
        self.spawn(["sh", "-c", _LIBVIRTD, "-", str(etc), str(lib), str(fake_kvm)], "libvirtd.log",
                   prefix=["unshare", "-m", "--propagation", "private"])
        self._libvirtd = self._procs[-1]
        self._wait_libvirtd()
        pool = self.folder / "pool"
        pool.mkdir(exist_ok=True)
        self.virsh("pool-define-as", "mailagent", "dir", "--target", str(pool))
        self.virsh("pool-start", "mailagent")

    def virsh(self, *args: str, check: bool = True) -> str:
        return self.run(["virsh", "-q", "-c", LIBVIRT_URI, *args], timeout=60, check=check).stdout

    def _private_files(self) -> tuple[Path, Path, Path]:
        etc, lib = self.folder / "etc-libvirt", self.folder / "var-lib-libvirt"
        subprocess.run(["cp", "-a", "/etc/libvirt", str(etc)], check=True)
        subprocess.run(["cp", "-a", "/var/lib/libvirt", str(lib)], check=True)
        with open(etc / "qemu.conf", "a") as conf:
            conf.write("\n# mailagent Vagrant test: no private /dev per domain (see netns.py)\n"
                       "namespaces = [ ]\n")
        fake_kvm = self.folder / "fake-kvm"
        fake_kvm.touch(mode=0o000)
        return etc, lib, fake_kvm

    def _wait_libvirtd(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._libvirtd.poll() is not None:
                break
            if self.run(["virsh", "-c", LIBVIRT_URI, "version"], timeout=20, check=False).returncode == 0:
                return
            time.sleep(0.5)
        log = (self.folder / "libvirtd.log").read_text(errors="replace")[-2000:]
        raise NetnsError(f"libvirtd did not come up in {timeout:.0f}s; its log:\n{log}")

    def stop(self) -> list[str]:
        """Tear everything down, whatever state it is in; returns what needed force."""
        notes: list[str] = []
        if self._exists() and self._libvirtd_alive():
            self._destroy_domains(notes)
        for proc in reversed(self._procs):
            if proc.poll() is None:  # not reaped yet, so the PID is still ours
                _terminate(proc.pid, notes)
        if self._exists():
            for pid in self.leftover_pids():
                notes.append(f"killed leftover pid {pid} in netns {self.name}")
                _terminate(pid, notes)
            subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
        if not self._run_libvirt_existed:
            shutil.rmtree("/run/libvirt", ignore_errors=True)
        return notes

    def leftover_pids(self) -> list[int]:
        """Every process still in the namespace (`ip netns pids`)."""
        done = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split() if p.isdigit()]

    def _exists(self) -> bool:
        return Path(f"/run/netns/{self.name}").exists()

    def _libvirtd_alive(self) -> bool:
        return self._libvirtd is not None and self._libvirtd.poll() is None

    def _destroy_domains(self, notes: list[str]) -> None:
        try:
            for domain in self.virsh("list", "--all", "--name", check=False).split():
                notes.append(f"destroyed leftover domain {domain}")
                self.virsh("destroy", domain, check=False)
                self.virsh("undefine", domain, "--remove-all-storage", check=False)
            for network in self.virsh("net-list", "--name", check=False).split():
                self.virsh("net-destroy", network, check=False)
        except subprocess.TimeoutExpired:
            notes.append("libvirtd stopped answering during teardown")


PREFIX = "mailagent-vg-"


def name_for(pid: int) -> str:
    """The namespace of the test process `pid` (its PID in the name tells a killed run's apart)."""
    return f"{PREFIX}{pid}"


def reap_stale(runs: Path) -> list[str]:
    """Tear down namespaces and run folders left by runs that were killed before their teardown."""
    notes = []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in listed:
        if name.startswith(PREFIX) and name[len(PREFIX):].isdigit() \
                and not _pid_alive(int(name[len(PREFIX):])):
            notes += Netns(name, runs).stop() + [f"removed stale netns {name}"]
            if not _pid_alive(_read_pid(Path("/run/libvirtd.pid"))):
                shutil.rmtree("/run/libvirt", ignore_errors=True)
    for folder in runs.glob("*-*"):
        owner = folder.name.split("-", 1)[0]
        if owner.isdigit() and not _pid_alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            notes.append(f"removed stale run folder {folder}")
    return notes


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _terminate(pid: int, notes: list[str]) -> None:
    """SIGTERM, wait, SIGKILL: by PID, and only a PID we started or found in our namespace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _pid_alive(pid):
                return
            time.sleep(0.05)
        if sig == signal.SIGTERM:
            notes.append(f"pid {pid} ignored SIGTERM; killed")
