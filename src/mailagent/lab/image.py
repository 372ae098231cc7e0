"""The lab's Debian images (12 bookworm, 13 trixie): a recipe per suite, its hash, and a cache
of built images keyed by suite and hash, so both suites' images live side by side.

An image folder (paths.image_dir) holds `disk.qcow2` (ext4 root, 4 GiB virtual), `vmlinuz` and
`initrd.img` for direct boot, the lab SSH key pair (`id_ed25519`, root's only way in) and
`recipe.json`. It is built in a temp folder beside it and renamed into place, so a half-built
image is never mistaken for a good one. The Debian mirror comes from the host's apt sources
at run time; debootstrap's .deb cache is kept per suite in the cache dir so a rebuild downloads
little. What differs between suites (package names, the guest's apt sources format) is data:
the SUITES table.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mailagent.lab import paths
from mailagent.lab.paths import Mirrors, host_mirrors

# Bump when the build steps change in a way the package lists do not show.
BUILD_SCRIPT_VERSION = 4
ARCH = "amd64"
DISK_SIZE = "4G"
PACKAGES = (
    "linux-image-amd64", "systemd-sysv", "openssh-server", "python3", "python3-venv",
    "ca-certificates", "iproute2", "procps", "less",
    # minbase leaves these out; systemd needs udev for /dev/vda and NIC names, dbus for logind.
    "udev", "dbus", "libnss-myhostname",
)
# What the deploys install, downloaded into the guest's apt cache so installs need no network.
PREDOWNLOAD = ("postfix", "libsasl2-modules", "ca-certificates", "sasl2-bin", "bsd-mailx")



@dataclass(frozen=True)
class Suite:
    """One Debian release the lab builds images of."""

    version: str  # "13"
    name: str  # "trixie"
    # Packages this suite names differently: {generic name: this suite's name, or None to drop}.
    renamed: tuple[tuple[str, str | None], ...] = ()
    # How the guest's apt sources are written, as a fresh install of this release writes them.
    sources_format: str = "deb822"

    def os_info(self) -> dict:
        """What the lab state records as a host's `os`."""
        return {"id": "debian", "version": self.version, "suite": self.name}

    def packages(self, names=PACKAGES) -> tuple[str, ...]:
        renamed = dict(self.renamed)
        return tuple(renamed.get(n, n) for n in names if renamed.get(n, n) is not None)


SUITES = {
    "12": Suite("12", "bookworm", sources_format="one-line"),
    "13": Suite("13", "trixie"),
}
DEFAULT_DEBIAN = "13"


def suite(version: str | int | None = None) -> Suite:
    """The suite of Debian `version` ("12", "13"; default DEFAULT_DEBIAN); ValueError otherwise."""
    key = str(version or DEFAULT_DEBIAN).strip()
    by_name = {s.name: s for s in SUITES.values()}
    if key in SUITES or key in by_name:
        return SUITES.get(key) or by_name[key]
    raise ValueError(f"Debian {key!r} is not a lab suite (known: "
                     + ", ".join(f"{v} ({s.name})" for v, s in SUITES.items()) + ")")


Progress = Callable[[str], None]
# Lab names guests resolve to the host's loopback (through QEMU's user-mode gateway).
HOSTS_LINE = (
    f"{paths.GATEWAY} sink.lab.mailagent.test collector.lab.mailagent.test "
    "hub.lab.mailagent.test wrong-name.lab.mailagent.test"
)


class ImageError(RuntimeError):
    """The image could not be built (what failed, and the tail of its log)."""


@dataclass(frozen=True)
class Image:
    """A built image on disk."""

    folder: Path

    @property
    def disk(self) -> Path:
        return self.folder / "disk.qcow2"

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def ssh_key(self) -> Path:
        return self.folder / "id_ed25519"

    def complete(self) -> bool:
        """True when every file a VM needs is there."""
        return all(p.is_file() for p in (self.disk, self.kernel, self.initrd, self.ssh_key))


def recipe(debian: Suite | str | None = None) -> dict:
    """Everything that decides one suite's image content; its hash names the cache folder."""
    release = debian if isinstance(debian, Suite) else suite(debian)
    return {
        "suite": release.name, "arch": ARCH, "disk_size": DISK_SIZE,
        "packages": sorted(release.packages()), "predownload": sorted(release.packages(PREDOWNLOAD)),
        "sources_format": release.sources_format,
        "hosts_line": HOSTS_LINE, "build_script_version": BUILD_SCRIPT_VERSION,
    }


def recipe_hash(spec: dict | None = None) -> str:
    """A short stable hash of a recipe (key order and list order do not matter)."""
    spec = recipe() if spec is None else spec
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def image_for(debian: Suite | str | None = None) -> Image:
    """Where the current recipe's image of Debian `debian` is (built or not)."""
    release = debian if isinstance(debian, Suite) else suite(debian)
    return Image(paths.image_dir(release.name, recipe_hash(recipe(release))))


def ensure_image(debian: Suite | str | None = None, progress: Progress = print) -> Image:
    """Return the cached image of Debian `debian` for the current recipe, building it when missing."""
    release = debian if isinstance(debian, Suite) else suite(debian)
    image = image_for(release)
    if image.complete():
        progress(f"image: reusing {image.folder}")
        return image
    paths.cache_dir().mkdir(parents=True, exist_ok=True)
    # One builder at a time; whoever waited finds the image done.
    with open(paths.cache_dir() / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("image: another process is building it; waiting")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not image.complete():
            for stale in paths.cache_dir().glob(".build-*"):  # left by a build that was killed
                _remove_tree(stale / "root")
                shutil.rmtree(stale, ignore_errors=True)
            _build(image, release, progress)
    return image


def _build(image: Image, release: Suite, progress: Progress) -> None:
    if os.geteuid() != 0:
        raise ImageError("building the lab image needs root (debootstrap, chroot)")
    try:
        mirrors = host_mirrors()
    except LookupError as exc:
        raise ImageError(str(exc)) from None
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=paths.cache_dir()))
    log_path = tmp / "build.log"
    try:
        root = tmp / "root"
        with open(log_path, "w") as log:
            run = _runner(log, log_path)
            progress(f"image: building {image.folder.name} from {mirrors.main} (takes minutes)")
            _debootstrap(run, root, mirrors, release)
            progress(f"image: debootstrap done ({time.monotonic() - started:.0f}s)")
            _configure(run, root, mirrors, release)
            _write_key_pair(tmp, root)
            _extract_boot_files(root, tmp)
            progress(f"image: guest configured ({time.monotonic() - started:.0f}s)")
            _make_disk(run, root, tmp)
        _remove_tree(root)
        (tmp / "recipe.json").write_text(json.dumps(recipe(release), indent=2) + "\n")
        shutil.rmtree(image.folder, ignore_errors=True)  # an incomplete one, from by hand
        os.rename(tmp, image.folder)
    except BaseException:
        _remove_tree(tmp / "root")
        if log_path.exists():
            kept = paths.cache_dir() / "last-failed-build.log"
            shutil.copy(log_path, kept)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"image: built in {time.monotonic() - started:.0f}s")


def _runner(log, log_path: Path) -> Callable[..., None]:
    """A command runner that appends to the build log and raises with its tail on failure."""

    def run(cmd: list[str], **kwargs) -> None:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        if done.returncode != 0:
            log.flush()
            tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-25:])
            raise ImageError(f"{cmd[0]} failed (exit {done.returncode}); build log tail:\n{tail}")

    return run


def _write_key_pair(folder: Path, root: Path) -> None:
    """Make the lab key pair (kept beside the image) and make it root's only way in."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    key_path = folder / "id_ed25519"
    key_path.touch(mode=0o600)
    key_path.write_bytes(private)
    (folder / "id_ed25519.pub").write_bytes(public + b" mailagent-lab\n")
    _authorize_key(root, public + b" mailagent-lab\n")


def _extract_boot_files(root: Path, folder: Path) -> None:
    """Copy the guest's kernel and initrd out for QEMU's -kernel/-initrd direct boot."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageError("the image has no kernel or initrd under /boot")
    shutil.copy(kernels[-1], folder / "vmlinuz")
    shutil.copy(initrds[-1], folder / "initrd.img")


def _make_disk(run, root: Path, folder: Path) -> None:
    """ext4 straight from the tree (no mount needed), then a compact qcow2 of it."""
    raw = folder / "disk.raw"
    run(["mkfs.ext4", "-q", "-F", "-L", "mailagent-root", "-d", str(root), str(raw), DISK_SIZE])
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(folder / "disk.qcow2")])
    raw.unlink()


# --- the guest tree ---------------------------------------------------------------------------

CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
GUEST_FILES = {
    "etc/fstab": "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n",
    "etc/hosts": f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{HOSTS_LINE}\n",
    # Whatever the kernel calls the NIC (ens3, enp0s3 or eth0), DHCP from QEMU's user net.
    "etc/systemd/network/20-lab.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n",
    "etc/ssh/sshd_config.d/lab.conf": (
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
    ),
    # Host keys are made on each VM's first boot, so no two VMs share one.
    "etc/systemd/system/lab-ssh-hostkey.service": (
        "[Unit]\nDescription=Generate this VM's SSH host key\nBefore=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n[Service]\nType=oneshot\n"
        "ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    ),
    # An initrd with just what finds the virtio root disk boots faster under TCG than "most".
    "etc/initramfs-tools/conf.d/lab.conf": "MODULES=list\n",
    "etc/initramfs-tools/modules": "virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n",
    # QEMU's user-mode DNS; guests resolve the lab names from /etc/hosts anyway.
    "etc/resolv.conf": "nameserver 10.0.2.3\n",
}
ENABLE = ("systemd-networkd.service", "lab-ssh-hostkey.service", "serial-getty@ttyS0.service")
# Timers that would grab the apt lock or the CPU in the middle of a deploy.
MASK = ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
        "fstrim.timer")


def _debootstrap(run, root: Path, mirrors: Mirrors, release: Suite, packages=PACKAGES) -> None:
    debs = paths.debs_dir(release.name)
    debs.mkdir(parents=True, exist_ok=True)
    run([
        "debootstrap", f"--arch={ARCH}", "--variant=minbase",
        f"--include={','.join(release.packages(packages))}",
        f"--cache-dir={debs}", release.name, str(root), mirrors.main,
    ])


def apt_sources(mirrors: Mirrors, release: Suite) -> tuple[str, str]:
    """(path in the guest, text) of its apt sources: main, -updates and -security when known."""
    entries = [(mirrors.main, f"{release.name} {release.name}-updates")]
    if mirrors.security:
        entries.append((mirrors.security, f"{release.name}-security"))
    if release.sources_format == "one-line":
        lines = [f"deb {uri} {s} main" for uri, suites in entries for s in suites.split()]
        return "etc/apt/sources.list", "\n".join(lines) + "\n"
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    stanzas = [f"Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main\nSigned-By: {keyring}\n"
               for uri, suites in entries]
    return "etc/apt/sources.list.d/debian.sources", "\n".join(stanzas)


def write_apt_sources(root: Path, mirrors: Mirrors, release: Suite) -> None:
    """The guest's apt sources in its release's own format, and no other source file."""
    rel, text = apt_sources(mirrors, release)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def _configure(run, root: Path, mirrors: Mirrors, release: Suite) -> None:
    """Apt lists and the deploys' .debs in place, then the guest's boot, network and SSH set-up."""
    chroot = ["chroot", str(root)]
    write_apt_sources(root, mirrors, release)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")  # the build resolves like the host
    run([*chroot, "apt-get", "update", "-q"], env=CHROOT_ENV)
    # debootstrap's own .debs are kept in the cache dir; the guest keeps only the deploys' ones.
    run([*chroot, "apt-get", "clean"], env=CHROOT_ENV)
    run([*chroot, "apt-get", "install", "-y", "-q", "--download-only", *release.packages(PREDOWNLOAD)],
        env=CHROOT_ENV)
    for rel, text in GUEST_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).unlink(missing_ok=True)
        (root / rel).write_text(text)
    run([*chroot, "update-initramfs", "-u", "-k", "all"], env=CHROOT_ENV)
    run([*chroot, "systemctl", "enable", *ENABLE], env=CHROOT_ENV)
    run([*chroot, "systemctl", "mask", *MASK], env=CHROOT_ENV)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/hostname").unlink(missing_ok=True)  # the kernel command line names each VM
    (root / "etc/machine-id").write_text("")  # each boot makes its own


def _authorize_key(root: Path, public: bytes) -> None:
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_bytes(public)
    (ssh_dir / "authorized_keys").chmod(0o600)


def _remove_tree(root: Path) -> None:
    """Remove a build tree, unmounting first anything a failed debootstrap left mounted in it."""
    if not root.exists():
        return
    prefix = str(root.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
