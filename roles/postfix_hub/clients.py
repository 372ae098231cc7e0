"""The hub's settings and its fleet clients, read from the inventory before anything is touched."""

from __future__ import annotations

from pydantic import ValidationError
from pyinfra.api import DeployError

from mailagent.control.hub import credentials
from mailagent.control.hub.settings import HubClient, HubSettings
from mailagent.relay.profile import RelayProfile
from mailagent.settings_loader import problem_lines
from roles.postfix_relay.validate import profile_for, wants_relay


def hub_settings(host) -> HubSettings:
    """Host data `hub_server` (a dict; may be absent), validated, one line per problem."""
    data = host.data.get("hub_server") or {}
    try:
        settings = HubSettings.model_validate(data)
    except ValidationError as exc:
        lines = [f"{host.name}: {line}" for line in problem_lines(exc, "hub_server")]
        raise DeployError("invalid hub settings, nothing was changed:\n" + "\n".join(lines)) from None
    return settings if settings.names or settings.cert else settings.model_copy(update={"names": [host.name]})


def hub_clients(hub_host) -> list[HubClient]:
    """Every relay host of the inventory that submits to a hub or drains to one, with its login,
    derived password and the sender domains/addresses it owns."""
    folder = credentials.pki_dir(hub_host.data.get("mailagent_pki_dir"))
    clients = []
    for fleet_host in hub_host.state.inventory:
        if fleet_host.name == hub_host.name or not wants_relay(fleet_host) or "hub" in fleet_host.groups:
            continue
        profile = profile_for(fleet_host)
        if profile.provider != "hub" and profile.drain_relay is None:
            continue
        login = credentials.login_for(fleet_host.name)
        clients.append(HubClient(login=login, password=credentials.password_for(folder, login),
                                 domains=_domains(login, profile),
                                 addresses=_addresses(profile)))
    return clients


def _domains(name: str, profile: RelayProfile) -> tuple[str, ...]:
    found = [name] + ([profile.myorigin] if profile.myorigin else [])
    return tuple(dict.fromkeys(d.lower() for d in found))


def _addresses(profile: RelayProfile) -> tuple[str, ...]:
    found = ([profile.sender_address] if profile.sender_address else []) + list(profile.generic_map.values())
    return tuple(dict.fromkeys(a.lower() for a in found if "@" in a))
