"""Where the lab gets and keeps things.

The host's Debian mirror (read from its apt sources at run time), the image cache (shared,
survives labs) and the lab dir (one lab). The last two can be moved by environment so tests
and parallel users get their own: `MAILAGENT_CACHE_DIR` (default /var/cache/mailagent/lab)
and `MAILAGENT_LAB_DIR` (default ~/.local/state/mailagent/lab).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE_DIR = "/var/cache/mailagent/lab"
DEFAULT_LAB_DIR = "~/.local/state/mailagent/lab"

# What QEMU's user-mode networking calls the host's loopback, as seen from a guest.
GATEWAY = "10.0.2.2"


def cache_dir() -> Path:
    """The image cache root: built images by recipe hash, plus debootstrap's .deb cache."""
    return Path(os.environ.get("MAILAGENT_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser().absolute()


def lab_dir() -> Path:
    """The running lab's folder: state.json, overlays, pidfiles, serial logs."""
    return Path(os.environ.get("MAILAGENT_LAB_DIR") or DEFAULT_LAB_DIR).expanduser().absolute()


def debs_dir(suite: str) -> Path:
    """debootstrap's --cache-dir for one suite, kept across recipe changes so a rebuild
    downloads little (one folder per suite: debootstrap does not tell suites' .debs apart)."""
    return cache_dir() / "debs" / suite


def image_dir(suite: str, recipe_hash: str) -> Path:
    """The finished image of one suite's recipe (disk, kernel, initrd, lab SSH key)."""
    return cache_dir() / f"{suite}-{recipe_hash}"


# The Debian archive guests use is the host's own, read from its apt sources at run time
# (never written into a project file). Both source formats are understood.
APT_SOURCES = ("etc/apt/sources.list.d", "etc/apt/sources.list")


@dataclass(frozen=True)
class Mirrors:
    """The host's Debian archive URIs: the main one and, when configured, the security one."""

    main: str
    security: str | None = None


def _add(found: dict[str, str], uri: str, suites: list[str]) -> None:
    kind = "security" if any(s.endswith("-security") for s in suites) else "main"
    if any(not s.endswith(("-security", "-updates", "-backports")) for s in suites) or kind == "security":
        found.setdefault(kind, uri.rstrip("/"))


def parse_deb822(text: str) -> dict[str, str]:
    """Mirrors from deb822 `.sources` text: {"main": uri, "security": uri} (either may be absent)."""
    found: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.strip().startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split()[:1]:
                _add(found, uri, fields.get("suites", "").split())
    return found


def parse_one_line(text: str) -> dict[str, str]:
    """Mirrors from one-line `sources.list` text (`deb [opts] URI SUITE COMPONENTS...`)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            _add(found, words[0], [words[1]])
    return found


def host_mirrors(root: Path = Path("/")) -> Mirrors:
    """The host's Debian mirrors; raises LookupError naming the files read when none is found."""
    found: dict[str, str] = {}
    listing = root / APT_SOURCES[0]
    files = sorted(listing.glob("*.sources")) + [root / APT_SOURCES[1]] + sorted(listing.glob("*.list"))
    for path in files:
        if path.is_file():
            parse = parse_deb822 if path.suffix == ".sources" else parse_one_line
            for kind, uri in parse(path.read_text(errors="replace")).items():
                found.setdefault(kind, uri)
    if "main" not in found:
        raise LookupError(f"no Debian mirror in the host's apt sources ({root / 'etc/apt'})")
    return Mirrors(found["main"], found.get("security"))
