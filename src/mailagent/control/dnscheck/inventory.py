"""An inventory's relay hosts as `HostEntry` records, read by pyinfra's own inventory loader.

The one place outside `mailagent.lab` that imports pyinfra, lazily, on the control machine: the
inventory is Python that pyinfra evaluates (group_data included), and a second loader would
drift from it. Secrets are not needed to find sender domains, so unset `password_env` variables
read as empty here instead of stopping the check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mailagent.control.dnscheck.senders import HostEntry
from mailagent.control.dnscheck.settings import DnsSettings
from mailagent.relay.parse import parse_profile
from mailagent.relay.profile import ProfileError


class InventoryError(ValueError):
    """An inventory that cannot be read; `problems` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _SecretsNotNeeded(Mapping):
    """The environment, where every variable counts as set (empty when it is not)."""

    def __getitem__(self, name):
        return os.environ.get(name, "")

    def __contains__(self, name):
        return True

    def __iter__(self):
        return iter(os.environ)

    def __len__(self):
        return len(os.environ)


def load(path: Path) -> tuple[list[HostEntry], dict[str, DnsSettings]]:
    """(relay hosts, each host's DNS settings); InventoryError lists every problem."""
    # pyinfra (a second to import) loads only when an inventory is read, not for `--help`.
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    if not Path(path).is_file():  # pyinfra would take any other string for a host name to resolve
        raise InventoryError([f"{path}: no such inventory file"])
    try:
        with ctx_state.use(State()):  # pyinfra evaluates inventory files inside a state's context
            inventory = make_inventory(str(path))
    except Exception as exc:  # the inventory is user code: any error is a bad inventory
        cause = getattr(exc, "exception", exc)  # pyinfra wraps the inventory's own exception
        problem = f"{path}: cannot load the inventory: {type(cause).__name__}: {cause}"
        raise InventoryError([problem]) from None
    return entries_of(inventory)


def entries_of(hosts, profile_of=None) -> tuple[list[HostEntry], dict[str, DnsSettings]]:
    """From pyinfra hosts: those with `relay` data; `profile_of(host)` defaults to parsing it."""
    entries, settings, problems = [], {}, []
    for host in hosts:
        if host.data.get("relay") is None:
            continue
        try:
            profile = profile_of(host) if profile_of else parse_profile(host.data.get("relay"),
                                                                        environ=_SecretsNotNeeded())
            settings[host.name] = DnsSettings.of(host.data)
        except ProfileError as exc:
            problems += [f"{host.name}: {line}" for line in exc.problems]
            continue
        except ValueError as exc:
            problems.append(f"{host.name}: {' '.join(str(exc).split())}")
            continue
        hub_names = tuple((host.data.get("hub_server") or {}).get("names", ()))
        entries.append(HostEntry(host.name, tuple(host.groups), profile,
                                 settings[host.name].dkim_selectors, hub_names))
    if problems:
        raise InventoryError(problems)
    return entries, settings
