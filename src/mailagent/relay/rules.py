"""The rules a structurally valid relay profile must also follow.

Each rule takes the profile and returns (field, message) pairs; `check_profile` runs them all so
the user sees every problem at once. Rules see the profile before the preset fills it in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from fnmatch import fnmatchcase

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailagent.relay.presets import tls_for_port
from mailagent.relay.profile import RelayProfile, is_domain

Problem = tuple[str, str]

_LOOPBACK = "the relay listens on loopback only"
_NO_RELAY = "only this host may hand it mail"
_SMARTHOST = "all mail goes to the smarthost"
_TLS = "TLS to the smarthost is always required"
_LOCAL = "a null client delivers nothing locally"
# extra_main_cf keys the null client's guarantees rest on: (pattern, why, profile field instead).
GUARDED: tuple[tuple[str, str, str | None], ...] = (
    ("inet_interfaces", _LOOPBACK, None),
    ("inet_protocols", _LOOPBACK, "inet_protocols"),
    ("mynetworks", _NO_RELAY, None),
    ("mynetworks_style", _NO_RELAY, None),
    ("smtpd_relay_restrictions", _NO_RELAY, None),
    ("smtpd_recipient_restrictions", _NO_RELAY, None),
    ("smtpd_client_restrictions", _NO_RELAY, None),
    ("relayhost", _SMARTHOST, "provider, host and port"),
    ("smtp_fallback_relay", _SMARTHOST, "fallback_relays"),
    ("default_transport", _SMARTHOST, "provider, host and port"),
    ("relay_transport", _SMARTHOST, "provider, host and port"),
    ("transport_maps", _SMARTHOST, "provider, host and port"),
    ("sender_dependent_relayhost_maps", _SMARTHOST, "sender_routes"),
    ("sender_dependent_default_transport_maps", _SMARTHOST, "sender_routes"),
    ("smtp_sender_dependent_authentication", "SASL follows the credentials", "sender_routes"),
    ("smtp_tls_security_level", _TLS, "tls_verify"),
    ("smtp_tls_wrappermode", _TLS, "tls (or a port that implies it)"),
    ("smtp_tls_mandatory_protocols", _TLS + " at version 1.2 or later", None),
    ("smtp_tls_protocols", _TLS + " at version 1.2 or later", None),
    ("smtp_sasl_*", "SASL follows the credentials", "username, password and sasl_mechanisms"),
    ("smtp_tls_cert_file", "the client certificate is a secret upload", "client_cert"),
    ("smtp_tls_key_file", "the client certificate is a secret upload", "client_cert"),
    ("mydestination", _LOCAL, "forward_root_to"),
    ("local_transport", _LOCAL, "forward_root_to"),
)

_WARNS = "obsolete since Postfix 3.9 (whose postconf warns that it will be removed)"
_GONE = "no longer a Postfix parameter (unknown to 3.5 and later)"
# Parameters Postfix drops: (pattern, status, what to use instead). From 3.10's postconf warnings.
OBSOLETE: tuple[tuple[str, str, str], ...] = (
    ("*_use_tls", _WARNS, "the matching *_tls_security_level (for the smarthost: tls_verify)"),
    ("*_enforce_tls", _WARNS, "the matching *_tls_security_level (for the smarthost: tls_verify)"),
    ("*_per_site", _WARNS, "the matching *_tls_policy_maps"),
    ("disable_dns_lookups", _WARNS, "smtp_dns_support_level"),
    ("*_tls_dh1024_param_file", _WARNS, "nothing (leave the default)"),
    ("*_tls_eecdh_grade", _WARNS, "nothing (leave the default)"),
    ("*_tls_cipherlist", _GONE, "the matching *_tls_mandatory_ciphers and *_tls_exclude_ciphers"),
    ("tls_eecdh_*_curves", _GONE, "tls_eecdh_auto_curves"),
)


def _port(profile: RelayProfile) -> int | None:
    return profile.port or profile.preset.default_port


def _tls(profile: RelayProfile) -> str | None:
    port = _port(profile)
    if profile.tls:
        return profile.tls
    return port and (profile.preset.tls_for_port(port) or tls_for_port(port))


def host_and_region(profile: RelayProfile) -> Iterator[Problem]:
    preset = profile.preset
    if preset.fixed_host and profile.host:
        yield "host", f"{profile.provider} has a fixed host; use provider: custom for another host"
    if not preset.fixed_host and not profile.host:
        yield "host", f"required for provider {profile.provider}"
    if profile.host and any(ch in profile.host for ch in "[]:/ @"):
        yield "host", f"{profile.host!r} must be a bare host name (no brackets, port or scheme)"
    elif profile.host and preset.host_problem(profile.host):
        yield "host", preset.host_problem(profile.host)
    problem = preset.region_problem(profile.region)
    if problem:
        yield "region", problem


def port_offered(profile: RelayProfile) -> Iterator[Problem]:
    port, preset = _port(profile), profile.preset
    if port is None:
        yield "port", f"required for provider {profile.provider}"
    elif preset.ports and port not in preset.ports:
        yield "port", f"{port} is not a port {profile.provider} offers ({preset.describe_ports()})"
    if port == 25 and not profile.allow_port_25 and preset.ports == (25,):
        yield "port", (f"{profile.provider} accepts mail on 25 only, which most cloud networks "
                       "block or throttle outbound; check this host can reach it, then set "
                       "allow_port_25: true")
    elif port == 25 and not profile.allow_port_25:
        yield "port", ("25 is blocked or throttled on most cloud networks; use 587, 2525, 2587 or "
                       "2465, or set allow_port_25: true")


def tls_matches_port(profile: RelayProfile) -> Iterator[Problem]:
    port = _port(profile)
    if port is None:
        return
    implied = profile.preset.tls_for_port(port) or tls_for_port(port)
    if profile.tls and implied and profile.tls != implied:
        yield "tls", f"{profile.tls} contradicts port {port}, which speaks {implied} TLS"
    if _tls(profile) is None:
        yield "tls", f"cannot tell the TLS mode of port {port}; set tls: starttls or implicit"
    for index, fallback in enumerate(profile.fallback_relays):
        fallback_tls = tls_for_port(fallback.port)
        if fallback_tls and _tls(profile) and fallback_tls != _tls(profile):
            yield (f"fallback_relays.{index}.port",
                   f"port {fallback.port} speaks {fallback_tls} TLS but the primary relay uses "
                   f"{_tls(profile)} (smtp_tls_wrappermode applies to every relay)")
        if fallback.port == 25 and not profile.allow_port_25:
            yield f"fallback_relays.{index}.port", "25 is refused unless allow_port_25: true"


def credentials(profile: RelayProfile, environ: Mapping[str, str]) -> Iterator[Problem]:
    preset = profile.preset
    username = profile.username or preset.username
    has_password = profile.password is not None or profile.password_env is not None
    if profile.password is not None and profile.password_env:
        yield "password_env", "give either password or password_env, not both"
    if profile.password_env and profile.password_env not in environ:
        yield "password_env", f"environment variable {profile.password_env} is not set"
    if username and ":" in username:
        yield "username", "must not contain ':' (Postfix splits user and password at the first ':')"
    if preset.username and profile.username and profile.username != preset.username:
        yield "username", f"{profile.provider}'s SMTP user name is always {preset.username!r}"
    if has_password and not username:
        yield "username", "a password needs a user name"
    if username and not has_password and profile.provider != "custom":
        yield "password", "required (or password_env)"
    if profile.password is not None and not profile.password.get_secret_value().strip():
        yield "password", "is empty"
    if profile.password is not None and "\n" in profile.password.get_secret_value():
        yield "password", "contains a line break (a pasted key with a newline breaks AUTH)"
    if username and _tls(profile) == "none":
        yield "tls", "credentials need TLS: the password must never cross the network in clear"
    if preset.credentials == "none":
        for field in ("username", "password", "password_env"):
            if getattr(profile, field) is not None:
                yield field, (f"{profile.provider} takes no login (the smarthost accepts this "
                              "host by its IP or client_cert); remove it")


def client_certificate(profile: RelayProfile, environ: Mapping[str, str]) -> Iterator[Problem]:
    cert = profile.client_cert
    if cert is None:
        return
    if "BEGIN CERTIFICATE" not in cert.cert_pem:
        yield "client_cert.cert_pem", "is not PEM text (no BEGIN CERTIFICATE line)"
    if (cert.key_pem is None) == (cert.key_env is None):
        yield "client_cert.key_pem", "give either key_pem or key_env (one of them)"
    if cert.key_env and cert.key_env not in environ:
        yield "client_cert.key_env", f"environment variable {cert.key_env} is not set"
    key = cert.key() or environ.get(cert.key_env or "", "")
    encrypted = "ENCRYPTED PRIVATE KEY" in key or "Proc-Type: 4,ENCRYPTED" in key
    if key and "PRIVATE KEY-----" not in key:
        yield "client_cert.key_pem", "is not an unencrypted PEM private key (no PRIVATE KEY line)"
    if encrypted:
        yield "client_cert.key_pem", "is encrypted; Postfix needs the key without a passphrase"
    if _tls(profile) == "none":
        yield "client_cert", "a client certificate needs TLS (tls: starttls or implicit)"
    readable = "BEGIN CERTIFICATE" in cert.cert_pem and "PRIVATE KEY-----" in key and not encrypted
    problem = readable and _pair_problem(cert.cert_pem, key)
    if problem:
        yield "client_cert", problem


def _pair_problem(cert_pem: str, key_pem: str) -> str | None:
    """Why the key cannot serve the certificate (unreadable, or another key's), or None."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return "cert_pem is not a readable PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return "key_pem is not a readable PEM private key"
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, raw) != \
            key.public_key().public_bytes(serialization.Encoding.DER, raw):
        return "key_pem is not the private key of cert_pem"
    return None


def verification(profile: RelayProfile) -> Iterator[Problem]:
    if profile.tls_verify != "encrypt" and profile.ca_file == "":
        yield "ca_file", f"{profile.tls_verify} needs a CA file on the target"
    if profile.ca_pem is not None and "BEGIN CERTIFICATE" not in profile.ca_pem:
        yield "ca_pem", "is not PEM text (no BEGIN CERTIFICATE line)"
    if profile.ca_pem and profile.ca_file:
        yield "ca_file", "give either ca_file or ca_pem, not both"
    if _tls(profile) == "none" and profile.tls_verify != "encrypt":
        yield "tls_verify", "has no effect without TLS"


def addresses(profile: RelayProfile) -> Iterator[Problem]:
    if profile.myorigin is not None and not is_domain(profile.myorigin):
        yield "myorigin", f"{profile.myorigin!r} is not a domain name"
    for field in ("sender_address", "forward_root_to"):
        value = getattr(profile, field)
        if value is not None and not _is_address(value):
            yield field, f"{value!r} is not an address with a domain (user@example.com)"
    for local, public in profile.generic_map.items():
        if not _is_address(public):
            yield f"generic_map.{local}", f"{public!r} is not an address with a domain"


def extras(profile: RelayProfile) -> Iterator[Problem]:
    for key, value in profile.extra_main_cf.items():
        field = f"extra_main_cf.{key}"
        if "sasl_password" in key or "static:" in value:
            yield field, "credentials belong in username/password, not main.cf"
        if "\n" in value or "\n" in key:
            yield field, "must be one line"
        if "#" in value:
            yield field, "contains '#' (Postfix 3.10 warns about a comment after a value)"
        yield from ((field, message) for message in _key_problems(key))
    for index, mechanism in enumerate(profile.sasl_mechanisms):
        if not mechanism.replace("-", "").isalnum():
            yield f"sasl_mechanisms.{index}", f"{mechanism!r} is not a SASL mechanism name"


def _key_problems(key: str) -> Iterator[str]:
    for pattern, why, instead in GUARDED:
        if fnmatchcase(key, pattern):
            yield f"is set by mailagent ({why})" + (f"; use {instead}" if instead else "")
    for pattern, status, instead in OBSOLETE:
        if fnmatchcase(key, pattern):
            yield f"{status}; use {instead}"


def _is_address(value: str) -> bool:
    local, _, domain = value.rpartition("@")
    return bool(local) and is_domain(domain)


RULES: tuple[Callable[..., Iterator[Problem]], ...] = (
    host_and_region, port_offered, tls_matches_port, verification, addresses, extras,
)


def check_profile(profile: RelayProfile, environ: Mapping[str, str]) -> list[Problem]:
    problems = [problem for rule in RULES for problem in rule(profile)]
    problems += list(credentials(profile, environ))
    problems += list(client_certificate(profile, environ))
    return problems
