"""Which sender domains an inventory uses, and which provider each one's mail really leaves by.

    collect([HostEntry("web1", ("relays",), profile, {})]) ==
        [Sender(domain="example.com", route=Route("ses", "ses (eu-west-1)", None),
                selectors=(), hosts=("web1",), sources=("relay.sender_address",))]

Domains come from `sender_address`, `myorigin`, the `generic_map` public addresses and each
`sender_routes` entry's senders (with that route's smarthost). Mail to a hub leaves by the hub's
own provider, so a relay with `provider: hub` is checked against the provider of the inventory's
hub host whose name (or one of its `hub_server.names`) is the relay's `host`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mailagent.control.dnscheck.providers import facts_for


@dataclass(frozen=True)
class Route:
    provider: str            # the preset whose DNS facts apply
    via: str                 # how the mail goes, for the report: "hub relay-hub.example.com -> sendgrid"
    smarthost: str | None    # for providers without an SPF include: whose addresses SPF must allow


@dataclass(frozen=True)
class Sender:
    domain: str
    route: Route
    selectors: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostEntry:
    name: str
    groups: tuple[str, ...]
    profile: object                      # mailagent.relay.profile.RelayProfile
    dkim_selectors: dict = field(default_factory=dict)  # {domain: [selector, ...]}
    hub_names: tuple[str, ...] = ()      # hub_server.names, for hub hosts


def domain_of(value: str) -> str:
    return value.rpartition("@")[2].strip().lower().rstrip(".")


def domains_of(profile) -> list[tuple[str, str, object]]:
    """(domain, where it comes from, the profile whose smarthost carries it), in order."""
    found = []
    if profile.sender_address:
        found.append((domain_of(profile.sender_address), "relay.sender_address", profile))
    if profile.myorigin:
        found.append((domain_of(profile.myorigin), "relay.myorigin", profile))
    found += [(domain_of(public), "relay.generic_map", profile)
              for public in profile.generic_map.values() if "@" in public]
    for index, route in enumerate(getattr(profile, "sender_routes", None) or ()):
        found += [(domain_of(sender), f"relay.sender_routes[{index}]", route.relay)
                  for sender in route.senders]
    return [(d, source, p) for d, source, p in found if d]


def route_of(profile, hubs: dict) -> Route:
    if profile.provider != "hub":
        region = f" ({profile.region})" if profile.region else ""
        smarthost = None if facts_for(profile.provider).spf_include else profile.host
        return Route(profile.provider, f"{profile.provider}{region}", smarthost)
    upstream = hubs.get((profile.host or "").lower())
    if upstream is None or upstream.provider == "hub":
        return Route("hub", f"hub {profile.host}", profile.host)
    onward = route_of(upstream, {})
    return Route(onward.provider, f"hub {profile.host} -> {onward.via}", onward.smarthost)


def collect(entries: Iterable[HostEntry]) -> tuple[list[Sender], list[str]]:
    """The senders to check, merged across hosts, and the relay hosts that name no domain."""
    entries = list(entries)
    hubs = {name.lower(): e.profile for e in entries if "hub" in e.groups
            for name in (e.name, *e.hub_names)}
    merged: dict[tuple, dict] = {}
    unnamed = []
    for entry in entries:
        found = domains_of(entry.profile)
        if not found and "hub" not in entry.groups:
            unnamed.append(entry.name)
        for domain, source, profile in found:
            route = route_of(profile, hubs)
            selectors = tuple(entry.dkim_selectors.get(domain, ())) or facts_for(route.provider).selectors
            slot = merged.setdefault((domain, route, selectors), {"hosts": [], "sources": []})
            _add(slot["hosts"], entry.name)
            _add(slot["sources"], source)
    senders = [Sender(domain, route, selectors, tuple(s["hosts"]), tuple(s["sources"]))
               for (domain, route, selectors), s in merged.items()]
    return senders, unnamed


def _add(items: list, item) -> None:
    if item not in items:
        items.append(item)
