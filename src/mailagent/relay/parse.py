"""Parsing host data into a relay profile: structure, then the rules, then the preset's defaults.

`parse_profile(data)` reports every problem at once, one line per problem naming the field, before
any host is touched (ProfileError.problems); sender routes are parsed here too, each route's
smarthost by `parse_profile` itself, so a route is validated exactly like the main relay.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import SecretStr, ValidationError

from mailagent.relay.presets import tls_for_port
from mailagent.relay.profile import ProfileError, RelayProfile, SenderRoute
from mailagent.relay.routes import SMARTHOST_KEYS, key_problems, sender_problems
from mailagent.relay.rules import check_profile


def parse_profile(data: dict, prefix: str = "relay", environ=None) -> RelayProfile:
    """Validate `data` and fill in the preset; raise ProfileError listing every problem."""
    if not isinstance(data, dict):
        raise ProfileError([f"{prefix}: expected a mapping of settings, got {type(data).__name__}"])
    environ = os.environ if environ is None else environ
    data = dict(data)
    route_problems, routes = parse_routes(data.pop("sender_routes", []), prefix, environ)
    problems, profile = _structure(data, prefix)
    if profile is not None:
        problems += [f"{prefix}.{field}: {message}" for field, message in check_profile(profile, environ)]
    problems += route_problems
    if problems:
        raise ProfileError(problems)
    return complete(profile, environ).model_copy(update={"sender_routes": routes})


def _structure(data: dict, prefix: str) -> tuple[list[str], RelayProfile | None]:
    """Structural problems, and a model of the rest so the rules can still report theirs."""
    try:
        return [], RelayProfile.model_validate(data)
    except ValidationError as exc:
        problems = [_format_error(prefix, err) for err in exc.errors()]
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
    try:
        return problems, RelayProfile.model_validate({k: v for k, v in data.items() if k not in bad})
    except ValidationError:
        return problems, None


def complete(profile: RelayProfile, environ) -> RelayProfile:
    """Fill in what the preset and the port imply (host, port, TLS mode, username, password)."""
    preset = profile.preset
    port = profile.port or preset.default_port
    update = {
        "host": profile.host or preset.host_for(profile.region),
        "port": port,
        "tls": profile.tls or preset.tls_for_port(port) or tls_for_port(port),
        "username": profile.username or preset.username,
        "concurrency": profile.concurrency or preset.concurrency,
    }
    if profile.password_env:
        update["password"] = SecretStr(environ[profile.password_env])
    if profile.client_cert and profile.client_cert.key_env:
        update["client_cert"] = profile.client_cert.model_copy(
            update={"key_pem": SecretStr(environ[profile.client_cert.key_env])})
    return profile.model_copy(update=update)


def _format_error(prefix: str, err: dict) -> str:
    loc = ".".join(str(part) for part in err["loc"])
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown setting (see `mailagent render --help` and the README's settings table)"
    elif err["type"] == "literal_error":
        message = f"{err['input']!r} is not allowed; {err['msg'][0].lower()}{err['msg'][1:]}"
    return f"{prefix}.{loc}: {message}" if loc else f"{prefix}: {message}"




def parse_routes(data, prefix: str, environ: Mapping[str, str]) -> tuple[list[str], list[SenderRoute]]:
    """Every route's problems (one line each, named `{prefix}.sender_routes[i]...`) and the routes."""
    if not isinstance(data, list):
        return [f"{prefix}.sender_routes: expected a list of routes, got {type(data).__name__}"], []
    problems, routes, owner = [], [], {}
    for index, raw in enumerate(data):
        where = f"{prefix}.sender_routes[{index}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping (senders and smarthost keys)")
            continue
        found, senders = sender_problems(raw.get("senders"), where, index, owner)
        found += key_problems(raw, where)
        relay = None
        try:
            relay = parse_profile({k: v for k, v in raw.items() if k in SMARTHOST_KEYS},
                                  prefix=where, environ=environ)
        except ProfileError as exc:
            found += exc.problems
        problems += found
        if not found:
            routes.append(SenderRoute(senders=senders, relay=relay))
    return problems, routes
