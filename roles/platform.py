"""What each host is (OS, Postfix, Python, machine, C library), and whether we support it.

One fact, read in one round trip per host, decides the package names, the Postfix config
variant, the Python the agent runs on (and so its wheel set) and the agent's log source. The
first role to ask checks every host of the deploy, so an unsupported host stops the deploy
before any host is changed, with one line per host: what it has, what is supported.

    platform_of(host) -> Platform(release=RELEASES[...], machine="x86_64", glibc=(2, 41),
                                  postfix=(3, 10), python="3.13.5")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyinfra.api import DeployError, FactBase

MACHINES = ("x86_64", "aarch64")
MIN_GLIBC = (2, 34)
PYTHONS = ((3, 10), (3, 13))  # the agent's interpreters, oldest and newest
_CACHE_ATTRIBUTE = "_mailagent_platforms"


@dataclass(frozen=True)
class Release:
    """A supported OS release and what the deploy uses on it."""

    os_id: str                # /etc/os-release ID (the first of `aliases` that matches wins)
    version: str              # VERSION_ID, or its major part for the RHEL family
    name: str
    family: str               # "debian" (apt) or "rhel" (dnf)
    postfix: tuple[int, int]  # the release's Postfix, when the host cannot tell yet
    python: str               # the interpreter the agent runs on
    python_packages: tuple[str, ...]
    python_version: str       # its full version, when the host cannot tell yet
    log_source: str           # the agent's `log_source`: where Postfix's log lines end up
    postfix_unit: str         # the systemd unit whose journal holds Postfix's lines
    aliases: tuple[str, ...] = ()

    def matches(self, os_id: str, version_id: str, id_like: str) -> bool:
        ids = {self.os_id, *self.aliases}
        version = version_id.split(".")[0] if self.family == "rhel" else version_id
        return os_id in ids and version == self.version


DEBIAN_PYTHON = ("python3", "python3-venv")
RELEASES = (
    Release("debian", "12", "Debian 12 (bookworm)", "debian", (3, 7), "python3", DEBIAN_PYTHON,
            "3.11.2", "journal", "postfix@-"),
    Release("debian", "13", "Debian 13 (trixie)", "debian", (3, 10), "python3", DEBIAN_PYTHON,
            "3.13.5", "journal", "postfix"),
    Release("ubuntu", "22.04", "Ubuntu 22.04 LTS", "debian", (3, 6), "python3", DEBIAN_PYTHON,
            "3.10.12", "journal", "postfix@-"),
    Release("ubuntu", "24.04", "Ubuntu 24.04 LTS", "debian", (3, 8), "python3", DEBIAN_PYTHON,
            "3.12.3", "journal", "postfix@-"),
    # RHEL 9's python3 is 3.9; the agent needs 3.10+, so the OS's own python3.11 package. Its
    # rsyslog writes /var/log/maillog (root 0600) from the journal, which has the same lines: the
    # agent reads the journal (group systemd-journal) and needs no right to root's files.
    Release("rhel", "9", "RHEL 9 family (RHEL, Rocky, Alma, CentOS Stream, Oracle)", "rhel", (3, 5),
            "python3.11", ("python3.11",), "3.11.9", "journal", "postfix",
            aliases=("rocky", "almalinux", "centos", "ol")),
    # Amazon Linux 2023 logs to the journal only (no rsyslog by default).
    Release("amzn", "2023", "Amazon Linux 2023", "rhel", (3, 7), "python3.11", ("python3.11",),
            "3.11.9", "journal", "postfix"),
)


@dataclass(frozen=True)
class Platform:
    """One host's platform, resolved against RELEASES."""

    release: Release
    machine: str
    glibc: tuple[int, int]
    postfix: tuple[int, int]
    python: str  # the full version of the interpreter the agent runs on

    @property
    def family(self) -> str:
        return self.release.family


class HostPlatform(FactBase):
    """The host's platform as key/value pairs (installed versions, else package candidates).

    {"id": "debian", "version_id": "13", "pretty_name": "Debian GNU/Linux 13 (trixie)",
     "machine": "x86_64", "glibc": "2.41", "postfix": "3.10.13", "postfix_candidate": "",
     "python3": "3.13.5", "python3_candidate": "3.13.5-1", "python3.11": "", ...}
    """

    def command(self) -> str:
        pythons = " ".join(sorted({r.python for r in RELEASES}))
        return "\n".join([
            ". /etc/os-release 2>/dev/null",
            'echo "id=$ID"; echo "version_id=$VERSION_ID"; echo "id_like=$ID_LIKE"',
            'echo "pretty_name=$PRETTY_NAME"; echo "machine=$(uname -m)"',
            'echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d" " -f2)"',
            'echo "postfix=$(postconf -h mail_version 2>/dev/null)"',
            f"for p in postfix {pythons}; do",
            '  if command -v apt-cache >/dev/null 2>&1; then',
            '    c=$(apt-cache policy "$p" 2>/dev/null | sed -n "s/^ *Candidate: //p")',
            '  elif command -v dnf >/dev/null 2>&1; then',
            '    c=$(dnf -q repoquery --latest-limit 1 --qf "%{version}" "$p" 2>/dev/null | tail -n 1)',
            '  else c=""; fi',
            '  echo "${p}_candidate=$c"',
            "done",
            f"for p in {pythons}; do",
            '  echo "$p=$($p -c "import sys; print(\'%d.%d.%d\' % sys.version_info[:3])" 2>/dev/null)"',
            "done",
        ])

    def process(self, output) -> dict:
        pairs = (line.partition("=") for line in output if "=" in line)
        return {key.strip(): value.strip().strip('"') for key, _, value in pairs}


def release_of(facts: dict) -> Release | None:
    os_id, version_id = facts.get("id", "").lower(), facts.get("version_id", "")
    return next((r for r in RELEASES if r.matches(os_id, version_id, facts.get("id_like", ""))), None)


def version_tuple(text: str, parts: int) -> tuple[int, ...] | None:
    """The leading `parts` numbers of a version ("1:3.10.13-0+deb13u1" -> (3, 10))."""
    match = re.match(r"^(?:\d+:)?(\d+(?:\.\d+)*)", text or "")
    if not match:
        return None
    numbers = tuple(int(n) for n in match.group(1).split("."))
    return numbers[:parts] if len(numbers) >= parts else None


def resolve(facts: dict) -> Platform | str:
    """The host's Platform, or one line saying what it has and why it is not supported."""
    release = release_of(facts)
    machine = facts.get("machine", "")
    glibc = version_tuple(facts.get("glibc", ""), 2)
    has = (f"{facts.get('pretty_name') or facts.get('id') or 'unknown OS'} on {machine or '?'}"
           f" (glibc {facts.get('glibc') or '?'})")
    if release is None or machine not in MACHINES or glibc is None or glibc < MIN_GLIBC:
        return f"unsupported platform: {has}; supported: {supported_summary()}"
    postfix = (version_tuple(facts.get("postfix", ""), 2)
               or version_tuple(facts.get("postfix_candidate", ""), 2) or release.postfix)
    python = _full_version(facts.get(release.python, ""), release) or _full_version(
        facts.get(f"{release.python}_candidate", ""), release) or release.python_version
    if not PYTHONS[0] <= version_tuple(python, 2) <= PYTHONS[1]:
        return (f"unsupported platform: {has} has Python {python} as {release.python}; the agent runs "
                f"on {'.'.join(map(str, PYTHONS[0]))} to {'.'.join(map(str, PYTHONS[1]))}")
    return Platform(release=release, machine=machine, glibc=glibc, postfix=postfix, python=python)


def _full_version(text: str, release: Release) -> str | None:
    """X.Y.Z (wheel sets are resolved for a full version); X.Y alone takes the release's own Z."""
    numbers = version_tuple(text, 3)
    if numbers:
        return ".".join(map(str, numbers))
    minor = version_tuple(text, 2)
    if not minor:
        return None
    shipped = release.python_version
    return shipped if version_tuple(shipped, 2) == minor else ".".join(map(str, minor)) + ".0"


def supported_summary() -> str:
    names = ", ".join(r.name for r in RELEASES)
    return f"{names}; on {' or '.join(MACHINES)} with glibc {'.'.join(map(str, MIN_GLIBC))}+"


def check_all(hosts) -> dict[str, Platform]:
    """Every host's Platform; raise DeployError with one line per unsupported host."""
    found, problems = {}, []
    for target in hosts:
        platform = resolve(target.get_fact(HostPlatform))
        if isinstance(platform, str):
            problems.append(f"{target.name}: {platform}")
        else:
            found[target.name] = platform
    if problems:
        raise DeployError("unsupported hosts, nothing was changed:\n" + "\n".join(problems))
    return found


def platform_of(host) -> Platform:
    """This host's Platform; every host of the deploy is checked on first use."""
    state = host.state
    platforms = getattr(state, _CACHE_ATTRIBUTE, None)
    if platforms is None or host.name not in platforms:
        platforms = {**(platforms or {}), **check_all(state.inventory.iter_activated_hosts())}
        setattr(state, _CACHE_ATTRIBUTE, platforms)
    return platforms[host.name]
