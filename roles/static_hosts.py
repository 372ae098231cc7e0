"""Static /etc/hosts entries from host data `etc_hosts` ({name: address}).

For names the hosts cannot resolve otherwise (a smarthost sink on a tester's machine, a hub on a
private network). Each entry is one managed line, `ADDRESS NAME`, replaced in place when the
address changes and left alone when it is right, so a second deploy changes nothing. Lines that
list the name among others are not touched (glibc takes the first line naming it).
"""

from __future__ import annotations

import ipaddress
import re

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.operations import files

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")


def entries_of(data, host_name: str) -> list[tuple[str, str]]:
    """The (name, address) pairs of `etc_hosts` data, checked; DeployError naming the field."""
    if not data:
        return []
    if not isinstance(data, dict):
        raise DeployError(f"{host_name}: etc_hosts: must be a dict of name: address")
    problems, pairs = [], []
    for name, address in sorted(data.items()):
        if not isinstance(name, str) or len(name) > 253 or not _NAME.match(name):
            problems.append(f"{host_name}: etc_hosts.{name}: not a host name")
            continue
        try:
            pairs.append((name, str(ipaddress.ip_address(str(address)))))
        except ValueError:
            problems.append(f"{host_name}: etc_hosts.{name}: {address!r} is not an IP address")
    if problems:
        raise DeployError("invalid etc_hosts, nothing was changed:\n" + "\n".join(problems))
    return pairs


def managed_line(name: str) -> str:
    """Extended regex matching the one managed line for `name` (any address, any spacing)."""
    return rf"^[0-9a-fA-F.:]+[[:space:]]+{name.replace('.', '[.]')}[[:space:]]*$"


@deploy("Static host names")
def static_hosts():
    for name, address in entries_of(host.data.get("etc_hosts"), host.name):
        files.line(name=f"/etc/hosts: {name} -> {address}", path="/etc/hosts",
                   line=managed_line(name), replace=f"{address} {name}", extended_regex=True)
