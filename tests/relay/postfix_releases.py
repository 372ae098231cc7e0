"""The real `postconf` of Postfix 3.5, 3.7 and 3.10, taken from Debian's own packages.

    release("trixie").postconf(config_dir, "-n")   # Postfix 3.10's postconf, its own libc

Each suite's `postfix` .deb and the libraries its `postconf` loads come from the host's Debian
mirror (read from its apt sources at run time): the suite's InRelease is checked with gpgv
against the archive keyring, Packages.xz against InRelease, every .deb against Packages. They
are extracted with `dpkg-deb -x` into a cache (MAILAGENT_POSTFIX_CACHE, default
/var/cache/mailagent/postfix-releases/<suite>/), built in a temp folder beside it and renamed
into place, under a lock, so parallel runs never see half an extract. postconf runs through the
suite's own dynamic loader: trixie's binaries need a newer glibc than Debian 12's.

Libraries are found the way ldd would: ask the suite's loader what postconf loads, and fetch
only the dependencies of the packages already there that provide what is missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mailagent.lab.paths import host_mirrors

SUITES = {"bullseye": (3, 5), "bookworm": (3, 7), "trixie": (3, 10)}
CACHE_ENV = "MAILAGENT_POSTFIX_CACHE"
DEFAULT_CACHE = "/var/cache/mailagent/postfix-releases"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
INDEX = "main/binary-amd64/Packages.xz"
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib/postfix")
LOADER = "ld-linux-x86-64.so.2"
MANIFEST = "packages.txt"
TIMEOUT = 120


@dataclass(frozen=True)
class Release:
    """One suite's extracted Postfix, e.g. Release("trixie", Path(".../trixie"))."""

    suite: str
    root: Path

    @property
    def library_path(self) -> str:
        return ":".join(str(self.root / d) for d in LIB_DIRS if (self.root / d).is_dir())

    @property
    def loader(self) -> Path:
        return next(self.root / d / LOADER for d in LIB_DIRS if (self.root / d / LOADER).exists())

    @property
    def master_cf(self) -> Path:
        return self.root / "usr/share/postfix/master.cf.dist"

    @property
    def packages(self) -> list[str]:
        return (self.root / MANIFEST).read_text().split()

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        """Run one of this tree's programs with this tree's loader and libraries only."""
        command = [str(self.loader), "--inhibit-cache", "--library-path", self.library_path,
                   str(self.root / program), *args]
        return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT)

    def postconf(self, config: Path, *args: str) -> subprocess.CompletedProcess:
        """`postconf -c config ...` (a folder made by `config_dir`)."""
        return self.run("usr/sbin/postconf", "-c", str(config), *args)

    def config_dir(self, folder: Path, main_cf: str) -> Path:
        """A config folder postconf can read: `main_cf` plus the package's own master.cf, with
        the compiled-in directories pointed into this tree rather than the host's."""
        folder.mkdir(parents=True, exist_ok=True)
        dirs = {"daemon_directory": "usr/lib/postfix/sbin", "shlib_directory": "usr/lib/postfix",
                "meta_directory": "etc/postfix", "command_directory": "usr/sbin"}
        tail = "".join(f"{name} = {self.root / path}\n" for name, path in dirs.items())
        (folder / "main.cf").write_text(f"{main_cf}\n# postfix_releases: this tree's folders\n{tail}")
        shutil.copy(self.master_cf, folder / "master.cf")
        return folder

    def loaded_outside(self) -> list[str]:
        """Libraries postconf would take from elsewhere than this tree (or not find at all)."""
        # What ldd does: the loader lists instead of running, and names what it cannot find.
        listing = subprocess.run(
            [str(self.loader), "--inhibit-cache", "--library-path", self.library_path,
             str(self.root / "usr/sbin/postconf")], env={"LD_TRACE_LOADED_OBJECTS": "1"},
            capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
        return [name for name, path in _resolved(listing) if not path.startswith(f"{self.root}/")]


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser().absolute()


def release(suite: str) -> Release:
    """The suite's extracted Postfix, downloaded and built first if the cache lacks it."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / suite / MANIFEST).is_file():
            _build(suite, root)
    return Release(suite, root / suite)


def _build(suite: str, root: Path) -> None:
    archive = Archive(host_mirrors().main, suite)
    staging = Path(tempfile.mkdtemp(prefix=f".{suite}-", dir=root))
    try:
        tree = Release(suite, staging)
        for name in ("postfix", "libc6"):
            archive.extract(name, staging)
        while missing := tree.loaded_outside():
            fetched = [archive.extract(name, staging) for name in archive.providers(missing)]
            if not fetched:
                raise RuntimeError(f"{suite}: no package provides {', '.join(missing)}")
        if tree.run("usr/sbin/postconf", "-d", "-h", "mail_version").returncode != 0:
            raise RuntimeError(f"{suite}: the extracted postconf does not run")
        (staging / MANIFEST).write_text("\n".join(archive.extracted) + "\n")
        shutil.rmtree(root / suite, ignore_errors=True)
        staging.rename(root / suite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Archive:
    """One suite of a Debian mirror: its verified package index and verified downloads."""

    def __init__(self, mirror: str, suite: str):
        self.mirror, self.suite = mirror, suite
        self.index = parse_packages(self._index_text())
        self.extracted: list[str] = []

    def extract(self, name: str, root: Path) -> str:
        stanza = self.index[name]
        data = _get(f"{self.mirror}/{stanza['Filename']}")
        _verify(data, stanza["SHA256"], stanza["Filename"])
        with tempfile.NamedTemporaryFile(suffix=".deb") as deb:
            deb.write(data)
            deb.flush()
            subprocess.run(["dpkg-deb", "-x", deb.name, str(root)], check=True, timeout=TIMEOUT)
        contain_symlinks(root)
        self.extracted.append(name)
        return name

    def providers(self, sonames: list[str]) -> list[str]:
        """Packages to fetch next: dependencies of what is there, named for a missing soname if
        any is (Debian policy 8.1), else all of them (libicuuc.so.72 lives in libicu72)."""
        candidates = [dep for name in self.extracted for dep in depends(self.index[name])
                      if self._is_library(dep) and dep not in self.extracted]
        candidates = list(dict.fromkeys(candidates))
        wanted = {package_name(soname) for soname in sonames}
        named = [dep for dep in candidates if dep.removesuffix("t64") in wanted]
        return named or candidates

    def _is_library(self, name: str) -> bool:
        return self.index.get(name, {}).get("Section", "").endswith("libs")  # zlib1g too

    def _index_text(self) -> str:
        release = _signed_release(_get(f"{self.mirror}/dists/{self.suite}/InRelease"))
        digest = re.search(rf"^ ([0-9a-f]{{64}}) +\d+ {re.escape(INDEX)}$", release, re.M)
        if not digest:
            raise RuntimeError(f"{self.suite}: InRelease lists no {INDEX}")
        data = _get(f"{self.mirror}/dists/{self.suite}/{INDEX}")
        _verify(data, digest.group(1), INDEX)
        return lzma.decompress(data).decode()


def parse_packages(text: str) -> dict[str, dict[str, str]]:
    """A Packages index as {package: {field: value}} (continuation lines joined)."""
    index: dict[str, dict[str, str]] = {}
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1].isspace() and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            index.setdefault(fields["Package"], fields)
    return index


def depends(stanza: dict[str, str]) -> list[str]:
    """The packages a stanza depends on (first alternative, versions dropped)."""
    relations = ", ".join(filter(None, (stanza.get("Pre-Depends"), stanza.get("Depends"))))
    return [part.split("|")[0].split("(")[0].split(":")[0].strip() for part in relations.split(",")]


def package_name(soname: str) -> str:
    """Debian's name for the package of a shared library: libssl.so.3 -> libssl3,
    libsasl2.so.2 -> libsasl2-2, libdb-5.3.so -> libdb5.3, libgcc_s.so.1 -> libgcc-s1."""
    stem, _, version = soname.partition(".so")
    stem, _, dashed = stem.partition("-")
    version = version.lstrip(".") or dashed
    joiner = "-" if stem[-1:].isdigit() and version else ""
    return f"{stem}{joiner}{version}".replace("_", "-").lower()


def contain_symlinks(root: Path) -> None:
    """Make absolute symlinks (bullseye's /lib64/ld-linux-x86-64.so.2) point inside `root`."""
    for path in root.rglob("*"):
        if path.is_symlink() and os.readlink(path).startswith("/"):
            target = root / os.readlink(path).lstrip("/")
            path.unlink()
            path.symlink_to(os.path.relpath(target, path.parent))


def _resolved(listing: str) -> list[tuple[str, str]]:
    """(soname, path) from `ld.so --list` lines like `libc.so.6 => /x/libc.so.6 (0x7f...)`."""
    pairs = []
    for line in listing.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if arrow:
            pairs.append((name, rest.split(" (")[0].strip()))
    return pairs


def _signed_release(data: bytes) -> str:
    result = subprocess.run(["gpgv", "--keyring", str(KEYRING), "--output", "-", "-"],
                            input=data, capture_output=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"InRelease signature not valid: {result.stderr.decode()[-500:]}")
    return result.stdout.decode()


def _verify(data: bytes, sha256: str, what: str) -> None:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{what}: SHA256 does not match the index")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.read()
