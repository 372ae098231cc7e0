"""Validate every relay host's `relay` data before any host is touched.

The first host to prepare validates them all, so one bad host stops the deploy for every host,
with one line per problem naming the host and the field.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyinfra.api import DeployError

from mailagent.relay.parse import parse_profile
from mailagent.relay.profile import ProfileError, RelayProfile
from roles.postfix_relay.hubcreds import with_hub_credentials

ROLE_GROUPS = ("relays", "hub", "collector")
_CACHE_ATTRIBUTE = "_mailagent_relay_profiles"


def wants_relay(host) -> bool:
    """Hosts in `relays` or `hub` get the relay; in inventories without those groups, all do."""
    groups = set(host.groups)
    return bool(groups & {"relays", "hub"}) or not groups & set(ROLE_GROUPS)


def validate_hosts(hosts: Iterable) -> dict[str, RelayProfile]:
    """Parse each host's `relay` data; raise DeployError listing every problem of every host."""
    profiles, problems, targets = {}, [], {}
    for target in hosts:
        targets[target.name] = target
        data = target.data.get("relay")
        if data is None:
            problems.append(f"{target.name}: relay: missing (a dict of relay settings, see README)")
            continue
        try:
            profiles[target.name] = parse_profile(data)
        except ProfileError as exc:
            problems += [f"{target.name}: {line}" for line in exc.problems]
    if problems:
        raise DeployError("invalid relay settings, nothing was changed:\n" + "\n".join(problems))
    return {name: with_hub_credentials(profile, targets[name])
            for name, profile in profiles.items()}


def profile_for(host) -> RelayProfile:
    """This host's validated profile; the whole inventory is validated on first use."""
    state = host.state
    profiles = getattr(state, _CACHE_ATTRIBUTE, None)
    if profiles is None:
        profiles = validate_hosts(h for h in state.inventory if wants_relay(h))
        setattr(state, _CACHE_ATTRIBUTE, profiles)
    return profiles[host.name]
