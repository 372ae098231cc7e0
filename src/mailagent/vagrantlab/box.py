"""A `debian/trixie64` (or `debian/bookworm64`) libvirt box and the apt repository its deploys
install from, cached per suite.

There is no Vagrant Cloud here, so the box is built from the lab image's debootstrap recipe
(`mailagent.lab.image`), shaped the way Vagrant expects: user `vagrant` with passwordless sudo
and Vagrant's insecure key, dbus (hostnamectl), systemd-networkd on eth0 (Vagrant's Debian guest
plugin adds its own `.network` file for the private network). It boots its kernel directly
(about 5 s faster than grub under TCG). The guests have no route anywhere, so the .debs the
deploy installs are downloaded while building and kept beside the box as a flat repository,
which the box's apt sources name at the libvirt gateway address (netns.py serves it there).

    <cache>/<recipe hash>/debian-trixie64.box, repo/*.deb, repo/Packages, recipe.json

Cache root: `$MAILAGENT_VAGRANT_CACHE_DIR` (default /var/cache/mailagent/vagrant).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mailagent.lab import image, paths

BUILD_VERSION = 2
# vagrant-libvirt's management network gateway: the host, as the guests see it.
GATEWAY = "192.168.121.1"
REPO_PORT = 8000
REPO_URL = f"http://{GATEWAY}:{REPO_PORT}/"
PACKAGES = (*image.PACKAGES, "sudo")
# What the site deploy installs (relay, hub, agent); python3-venv is in the box already.
REPO_PACKAGES = image.PREDOWNLOAD
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
INSECURE_KEYS = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"

BOX_VAGRANTFILE = f"""\
# The box boots its own kernel (no bootloader); the user's Vagrantfiles pick the driver.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    lv.cmd_line = "{CMDLINE}"
  end
end
"""
GUEST_FILES = {
    # The client id from the MAC: every box starts with the same (empty) machine-id, and
    # networkd's default id derives from it, so all boxes would ask for the same lease.
    "etc/systemd/network/20-eth0.network": ("[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n\n"
                                            "[DHCPv4]\nClientIdentifier=mac\n"),
    "etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD: ALL\n",
    "etc/apt/sources.list": f"deb [trusted=yes] {REPO_URL} ./\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
}
# From the lab image: per-VM host keys at first boot, a small initrd, sshd without passwords.
LAB_FILES = ("etc/systemd/system/lab-ssh-hostkey.service", "etc/initramfs-tools/conf.d/lab.conf",
             "etc/initramfs-tools/modules", "etc/ssh/sshd_config.d/lab.conf")


def box_name(release: image.Suite) -> str:
    """The name Vagrant knows the box by, as on Vagrant Cloud: debian/trixie64."""
    return f"debian/{release.name}64"


class Box:
    """A built box and its repository, on disk."""

    def __init__(self, folder: Path, release: image.Suite):
        self.folder = folder
        self.release = release
        self.name = box_name(release)
        self.box_file = folder / f"debian-{release.name}64.box"
        self.repo = folder / "repo"

    def complete(self) -> bool:
        return self.box_file.is_file() and (self.repo / "Packages").is_file()


def cache_root() -> Path:
    return Path(os.environ.get("MAILAGENT_VAGRANT_CACHE_DIR") or "/var/cache/mailagent/vagrant")


def guest_files(release: image.Suite) -> dict[str, str]:
    return {**GUEST_FILES, "etc/hostname": f"debian{release.version}\n"}


def recipe(release: image.Suite) -> dict:
    """Everything that decides one suite's box; its hash names the cache folder."""
    return {"base": image.recipe(release), "packages": sorted(release.packages(PACKAGES)),
            "repo": sorted(release.packages(REPO_PACKAGES)), "repo_url": REPO_URL, "cmdline": CMDLINE,
            "files": guest_files(release), "lab_files": LAB_FILES, "vagrantfile": BOX_VAGRANTFILE,
            "build_version": BUILD_VERSION}


def ensure_box(debian: str | None = None, progress=print) -> Box:
    """The cached box of Debian `debian` (default image.DEFAULT_DEBIAN) for the current recipe,
    built first when missing (one builder at a time)."""
    release = image.suite(debian)
    box = Box(cache_root() / f"{release.name}-{image.recipe_hash(recipe(release))}", release)
    if box.complete():
        progress(f"box: reusing {box.folder}")
        return box
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not box.complete():
            _build(box, progress)
    return box


def _build(box: Box, progress) -> None:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root()))
    log_path = tmp / "build.log"
    root = tmp / "root"
    try:
        with open(log_path, "w") as log:
            run = image._runner(log, log_path)
            mirrors = paths.host_mirrors()
            progress(f"box: building {box.folder.name} from {mirrors.main} (takes minutes)")
            image._debootstrap(run, root, mirrors, box.release, PACKAGES)
            _download_repo(run, root, mirrors, box.release, tmp / "repo")
            _configure(run, root, box.release)
            image._extract_boot_files(root, tmp)
            _pack(run, root, tmp, box.box_file.name)
        image._remove_tree(root)
        (tmp / "recipe.json").write_text(json.dumps(recipe(box.release), indent=2) + "\n")
        shutil.rmtree(box.folder, ignore_errors=True)
        os.rename(tmp, box.folder)
    except BaseException:
        image._remove_tree(root)
        if log_path.exists():
            shutil.copy(log_path, cache_root() / "last-failed-build.log")
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"box: built in {time.monotonic() - started:.0f}s")


def _download_repo(run, root: Path, mirrors, release: image.Suite, repo: Path) -> None:
    """The .debs the deploy needs on this very tree, as a flat repository with a Packages index."""
    chroot = ["chroot", str(root)]
    image.write_apt_sources(root, mirrors, release)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    run([*chroot, "apt-get", "update", "-q"], env=image.CHROOT_ENV)
    run([*chroot, "apt-get", "clean"], env=image.CHROOT_ENV)
    run([*chroot, "apt-get", "install", "-y", "-q", "--download-only", *release.packages(REPO_PACKAGES)],
        env=image.CHROOT_ENV)
    repo.mkdir()
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        shutil.move(deb, repo / deb.name)
    index = subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=repo, check=True,
                           capture_output=True, text=True).stdout
    (repo / "Packages").write_text(index)
    run([*chroot, "apt-get", "clean"], env=image.CHROOT_ENV)
    for lists in (root / "var/lib/apt/lists").glob("*_*"):  # the mirror's; the box knows only the repo
        lists.unlink()
    (root / "etc/apt/sources.list.d/debian.sources").unlink(missing_ok=True)


def _configure(run, root: Path, release: image.Suite) -> None:
    chroot = ["chroot", str(root)]
    for rel in LAB_FILES:
        _write(root / rel, image.GUEST_FILES[rel])
    for rel, text in guest_files(release).items():
        _write(root / rel, text)
    (root / "etc/sudoers.d/vagrant").chmod(0o440)
    _write(root / "etc/resolv.conf", "")  # no DNS anywhere; every name the deploy needs is in hosts
    run([*chroot, "useradd", "-m", "-s", "/bin/bash", "vagrant"], env=image.CHROOT_ENV)
    ssh = root / "home/vagrant/.ssh"
    ssh.mkdir(mode=0o700)
    shutil.copy(_insecure_key(), ssh / "authorized_keys")
    run([*chroot, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh"], env=image.CHROOT_ENV)
    run([*chroot, "update-initramfs", "-u", "-k", "all"], env=image.CHROOT_ENV)
    run([*chroot, "systemctl", "enable", *image.ENABLE], env=image.CHROOT_ENV)
    run([*chroot, "systemctl", "mask", *image.MASK], env=image.CHROOT_ENV)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_text(text)


def _insecure_key() -> Path:
    found = sorted(Path("/").glob(INSECURE_KEYS.lstrip("/")))
    if not found:
        raise image.ImageError(f"Vagrant's insecure public key not found ({INSECURE_KEYS}); "
                               "is the vagrant package installed?")
    return found[-1]


def _pack(run, root: Path, folder: Path, box_file: str) -> None:
    """ext4 from the tree, as qcow2, tarred with the box metadata and the boot files."""
    raw = folder / "disk.raw"
    run(["mkfs.ext4", "-q", "-F", "-L", "vagrant-root", "-d", str(root), str(raw), image.DISK_SIZE])
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(folder / "box.img")])
    raw.unlink()
    (folder / "metadata.json").write_text(json.dumps(
        {"provider": "libvirt", "format": "qcow2", "virtual_size": int(image.DISK_SIZE.rstrip("G"))}))
    (folder / "Vagrantfile").write_text(BOX_VAGRANTFILE)
    members = ["metadata.json", "Vagrantfile", "box.img", "vmlinuz", "initrd.img"]
    run(["tar", "-C", str(folder), "-cf", str(folder / box_file), *members])
    for name in members:
        (folder / name).unlink()
