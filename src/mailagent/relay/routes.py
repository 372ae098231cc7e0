"""Per-sender routing: `relay.sender_routes`, each route some senders and its own smarthost.

A route's smarthost settings are the main relay's keys (provider or custom host, port, TLS mode,
credentials, verification), parsed by the same `parse_profile` and its rules
(mailagent.relay.parse), so a route is validated exactly like the main relay; this module holds
the routes' own rules. Problems name the route:

    relay.sender_routes[1].port: 2465 is not a port sendgrid offers (...)
    relay.sender_routes[1].senders[0]: @example.com is already routed by sender_routes[0]

Senders are domains (`example.com`, which Postfix matches as `@example.com`: that domain only,
not its subdomains) or full addresses, matched against the envelope sender as submitted.
"""

from __future__ import annotations

from mailagent.relay.profile import is_domain

# The main relay's settings a route may give for its own smarthost; everything else (queue,
# rewriting, listeners, extra_main_cf) is the host's and stays on the main relay.
SMARTHOST_KEYS = ("provider", "region", "host", "port", "tls", "tls_verify", "ca_file", "ca_pem",
                  "username", "password", "password_env", "allow_port_25")


def sender_key(value: str) -> str | None:
    """The lookup key Postfix's sender maps use: `@example.com` or `user@example.com`; None when
    `value` is neither a domain nor an address."""
    local, at, domain = value.strip().lower().rpartition("@")
    if not is_domain(domain) or any(ch.isspace() or ch in "#:" for ch in local):
        return None  # a map key ends at whitespace; '#' starts a comment
    return f"{local}@{domain}" if local else f"@{domain}"


def key_problems(raw: dict, where: str) -> list[str]:
    problems = [f"{where}.{key}: not a route setting; a route takes senders and its smarthost's "
                f"{', '.join(SMARTHOST_KEYS)}" for key in raw if key not in ("senders", *SMARTHOST_KEYS)]
    if raw.get("provider") == "hub":
        problems.append(f"{where}.provider: hub is for the main relay only (its login is derived "
                        "for it); route these senders with their own smarthost")
    return problems


def sender_problems(value, where: str, index: int, owner: dict[str, int]) -> tuple[list[str], list[str]]:
    """(problems, lookup keys) of one route's senders; `owner` remembers which route has a key."""
    if not value or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [f"{where}.senders: required, a list of domains or addresses "
                "(example.com, alerts@example.com)"], []
    problems, keys = [], []
    for position, sender in enumerate(value):
        key = sender_key(sender)
        if key is None:
            problems.append(f"{where}.senders[{position}]: {sender!r} is neither a domain nor an "
                            "address (example.com, alerts@example.com)")
        elif key in owner:
            other = "this route" if owner[key] == index else f"sender_routes[{owner[key]}]"
            problems.append(f"{where}.senders[{position}]: {key} is already routed by {other}")
        else:
            owner[key] = index
            keys.append(key)
    return problems, keys
