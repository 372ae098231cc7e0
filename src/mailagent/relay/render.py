"""Render a completed relay profile into the Postfix files a relay host needs.

`render(profile, target)` returns {relative path: content}; nothing here touches a host. The role
uploads these files; `mailagent render` writes them to a folder.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from mailagent.relay.deployed import DrainTarget, RelayTarget
from mailagent.relay.profile import RelayProfile
from mailagent.relay.render_routes import concurrency, route_files, sasl_entries
from mailagent.relay.target import Target, ca_file, destination, map_text

TEMPLATES = Path(__file__).parent / "templates"
CLIENT_CERT_PATH = "/etc/postfix/relay-client-cert.pem"
CLIENT_KEY_PATH = "/etc/postfix/relay-client-key.pem"
DRAIN_CA_PATH = "/etc/postfix/drain-ca.pem"
# Debian ships tlsproxy commented out; TLS connection reuse needs it.
TLSPROXY_ENTRY = "tlsproxy  unix  -       -       y       -       0       tlsproxy"
SYSTEM_ACCOUNTS = ("root", "postmaster", "abuse", "MAILER-DAEMON", "nobody", "www-data")

SECRET_FILES = frozenset({"sasl_passwd", "relay-client-key.pem"})

# Settings whose syntax depends on the Postfix release: (first release, value), newest first.
# 3.5 (RHEL 9, Debian 11) knows compatibility levels 0/1/2 only and no `>=TLSv1.2` ranges.
BY_POSTFIX_VERSION: dict[str, tuple[tuple[tuple[int, int], str], ...]] = {
    "compatibility_level": (((3, 6), "3.6"), ((0, 0), "2")),
    "tls_protocols": (((3, 6), ">=TLSv1.2"), ((0, 0), "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1")),
}


def postfix_settings(version: tuple[int, int]) -> dict[str, str]:
    """The version-dependent values for one release, e.g. (3, 5) -> {"compatibility_level": "2", ...}."""
    return {name: next(value for since, value in choices if version >= since)
            for name, choices in BY_POSTFIX_VERSION.items()}


def render(profile: RelayProfile, target: Target) -> dict[str, str]:
    relayhost = destination(profile.host, profile.port)
    fallbacks = [destination(f.host, f.port) for f in profile.fallback_relays]
    files = {
        "sasl_passwd": _sasl_passwd(profile, [relayhost, *fallbacks]) + _drain_passwd(profile)
        + map_text(sasl_entries(profile)),
        "generic": map_text(_generic_entries(profile, target)),
        "virtual": map_text({name: profile.forward_root_to for name in SYSTEM_ACCOUNTS}
                        if profile.forward_root_to else {}),
        "master.cf.entries": TLSPROXY_ENTRY + "\n" if _reuse(profile) else "",
    }
    if profile.ca_pem:
        files["relay-ca.pem"] = profile.ca_pem.strip() + "\n"
    if profile.client_cert:
        files["relay-client-cert.pem"] = profile.client_cert.cert_pem.strip() + "\n"
        files["relay-client-key.pem"] = profile.client_cert.key().strip() + "\n"
    if profile.drain_relay and (profile.drain_relay.ca_pem or profile.ca_pem):
        files["drain-ca.pem"] = (profile.drain_relay.ca_pem or profile.ca_pem).strip() + "\n"
    files.update(route_files(profile, target))
    files["main.cf"] = _main_cf(profile, target, relayhost, fallbacks, files)
    files["relay.json"] = relay_settings(profile, target)
    return {name: content for name, content in files.items() if content or name == "main.cf"}


def _main_cf(profile, target, relayhost, fallbacks, files) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("etc/postfix/main.cf.j2").render(
        p=profile,
        relayhost=relayhost,
        fallbacks=fallbacks,
        security_level=profile.tls_verify if profile.tls != "none" else "none",
        ca_file=ca_file(profile, target),
        inet_protocols=_inet_protocols(profile, target),
        generic=bool(files["generic"]),
        virtual=bool(files["virtual"]),
        postfix=postfix_settings(target.postfix_version),
        client_cert_path=CLIENT_CERT_PATH,
        client_key_path=CLIENT_KEY_PATH,
        routes=concurrency(profile),
        sender_auth=bool(sasl_entries(profile)),
    )


def relay_settings(profile: RelayProfile, target: Target) -> str:
    """relay.json: what `mailagent check-relay` and the agent need to know; no secret in it."""
    return RelayTarget(
        provider=profile.provider,
        host=profile.host,
        port=profile.port,
        tls=profile.tls,
        tls_verify=profile.tls_verify,
        ca_file=ca_file(profile, target) if profile.tls_verify != "encrypt" else None,
        username=profile.username,
        sender_address=profile.sender_address,
        relayhost=destination(profile.host, profile.port),
        hints=profile.preset.hints,
        drain=drain_settings(profile, target),
    ).to_json()


def _reuse(profile: RelayProfile) -> bool:
    return profile.tls_connection_reuse and profile.tls != "none"


def _inet_protocols(profile: RelayProfile, target: Target) -> str:
    if profile.inet_protocols != "auto":
        return profile.inet_protocols
    return "all" if target.has_ipv6 else "ipv4"


def _sasl_passwd(profile: RelayProfile, destinations: list[str]) -> str:
    if not profile.username:
        return ""
    secret = profile.secret() or ""
    return map_text({dest: f"{profile.username}:{secret}" for dest in destinations})


def _drain_passwd(profile: RelayProfile) -> str:
    drain = profile.drain_relay
    if not drain or not drain.username or not drain.password:
        return ""
    return map_text({destination(drain.host, drain.port):
                 f"{drain.username}:{drain.password.get_secret_value()}"})


def drain_settings(profile: RelayProfile, target: Target) -> DrainTarget | None:
    """What `mailagent drain` switches Postfix to (the agent's `drain` setting)."""
    drain = profile.drain_relay
    if not drain:
        return None
    ca = DRAIN_CA_PATH if (drain.ca_pem or profile.ca_pem) else target.ca_bundle
    return DrainTarget(relay=destination(drain.host, drain.port), tls=drain.tls, ca_file=ca)


def _generic_entries(profile: RelayProfile, target: Target) -> dict[str, str]:
    entries = {}
    if profile.sender_address:
        for domain in dict.fromkeys([target.hostname, "localhost", "localhost.localdomain",
                                     profile.myorigin or target.hostname]):
            entries[f"@{domain}"] = profile.sender_address
    entries.update(profile.generic_map)
    return entries
