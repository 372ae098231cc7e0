"""Render `sender_routes` into Postfix maps and one master.cf transport per route.

For a route's senders trivial-rewrite(8) takes the transport from
`sender_dependent_default_transport_maps` (`route0`, no next hop) and, as that entry names
none, the next hop from `sender_dependent_relayhost_maps` (`[smtp.a.example]:2465`); relayhost
maps alone pick no transport, and TLS wrapper mode and verification are per transport, so an
implicit-TLS route and a STARTTLS one live side by side on one host. The SASL map is looked up by
sender first (`smtp_sender_dependent_authentication`), then by next hop for the main relay.

    sender_relay       @a.example [smtp.a.example]:2465
    sender_transport   @a.example route0
    master.cf.routes   route0 unix - - - - - smtp
                         -o smtp_tls_wrappermode=yes
                         -o smtp_tls_security_level=secure
                         -o smtp_tls_CAfile=/etc/postfix/route0-ca.pem
"""

from __future__ import annotations

from mailagent.relay.profile import RelayProfile
from mailagent.relay.target import Target, destination, map_text
from mailagent.relay.target import ca_file as main_ca_file

ROUTE_MAPS = ("sender_relay", "sender_transport")
MASTER_CF_ROUTES = "master.cf.routes"


def transport(index: int) -> str:
    return f"route{index}"


def ca_name(index: int) -> str:
    """The file (in /etc/postfix) a route's own `ca_pem` is written to."""
    return f"{transport(index)}-ca.pem"


def route_files(profile: RelayProfile, target: Target) -> dict[str, str]:
    """The two sender maps, each route's CA file and its master.cf entry ({} without routes)."""
    relays, transports, files = {}, {}, {}
    for index, route in enumerate(profile.sender_routes):
        for key in route.senders:
            relays[key] = destination(route.relay.host, route.relay.port)
            transports[key] = transport(index)
        if route.relay.ca_pem:
            files[ca_name(index)] = route.relay.ca_pem.strip() + "\n"
    if not relays:
        return {}
    main_ca = main_ca_file(profile, target)
    entries = [master_entry(index, route.relay, target, main_ca)
               for index, route in enumerate(profile.sender_routes)]
    return {"sender_relay": map_text(relays), "sender_transport": map_text(transports),
            MASTER_CF_ROUTES: "".join(entries), **files}


def master_entry(index: int, relay: RelayProfile, target: Target, main_ca: str) -> str:
    """One route's smtp transport: its TLS mode and verification (the rest as the main relay).

    A route that trusts another CA file than the main relay makes its own TLS connections:
    tlsproxy (connection reuse) runs chrooted and has only the main relay's CA file, read before
    its chroot, so it cannot open the route's (its handshake would fail and the mail stay queued).
    """
    level = relay.tls_verify if relay.tls != "none" else "none"
    lines = [f"{transport(index)}  unix  -       -       -       -       -       smtp",
             f"  -o smtp_tls_wrappermode={'yes' if relay.tls == 'implicit' else 'no'}",
             f"  -o smtp_tls_security_level={level}"]
    if level in ("verify", "secure"):
        ca = ca_file(index, relay, target)
        lines.append(f"  -o smtp_tls_CAfile={ca}")
        if ca != main_ca:
            lines.append("  -o smtp_tls_connection_reuse=no")
    return "\n".join(lines) + "\n"


def ca_file(index: int, relay: RelayProfile, target: Target) -> str:
    """The CA file a route's certificate is checked against (its `ca_pem`, `ca_file` or the system's)."""
    return f"/etc/postfix/{ca_name(index)}" if relay.ca_pem else relay.ca_file or target.ca_bundle


def sasl_entries(profile: RelayProfile) -> dict[str, str]:
    """Sender-keyed `user:password` lines of the routes with credentials (for the 0600 map)."""
    return {key: f"{route.relay.username}:{route.relay.secret() or ''}"
            for route in profile.sender_routes if route.relay.username for key in route.senders}


def concurrency(profile: RelayProfile) -> list[tuple[str, int]]:
    """(transport, connections) per route: `<transport>_destination_concurrency_limit`."""
    return [(transport(index), route.relay.concurrency)
            for index, route in enumerate(profile.sender_routes)]
