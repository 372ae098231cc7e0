"""Render the hub's Postfix additions: main.cf lines, master.cf services, SASL server files.

The hub's main.cf is the relay main.cf for its own upstream (mailagent.relay.render) with the
section below appended; port 25 stays on loopback and the fleet submits on two extra services
that only relay for authenticated clients.
"""

from __future__ import annotations

from mailagent.control.hub.settings import HubClient, HubSettings, sender_patterns
from mailagent.relay.render import postfix_settings

TLS_DIR = "/etc/postfix/hub-tls"
SASL_DIR = "/etc/postfix/sasl"
SASL_DB = f"{SASL_DIR}/sasldb2"
CLIENTS_FILE = "/etc/postfix/hub_clients"
SENDER_LOGINS = "/etc/postfix/hub_sender_logins"
REALM = "mailagent-hub"
BLOCK_BEGIN = "# BEGIN mailagent hub services"
BLOCK_END = "# END mailagent hub services"

SECRET_FILES = frozenset({"hub_clients", "hub-tls/key.pem"})


def render_hub(settings: HubSettings, clients: list[HubClient],
               postfix_version: tuple[int, int] = (3, 10)) -> dict[str, str]:
    """{name: content}: `main.cf.hub` (to append), `master.cf.hub` (a managed block),
    `sasl/smtpd.conf`, `hub_clients` (secret) and `hub_sender_logins`. `postfix_version` is
    the hub's (major, minor), as in the relay's `Target`."""
    return {
        "main.cf.hub": _main_cf(settings, postfix_settings(postfix_version)["tls_protocols"]),
        "master.cf.hub": _master_cf(settings),
        "sasl/smtpd.conf": _smtpd_conf(settings),
        "hub_clients": "".join(f"{c.login} {c.password}\n" for c in sorted(clients, key=_login)),
        "hub_sender_logins": _sender_logins(clients),
    }


def _login(client: HubClient) -> str:
    return client.login


def _main_cf(settings: HubSettings, tls_protocols: str) -> str:
    lines = [
        "",
        "# Hub: accepts authenticated mail from fleet hosts on the services in master.cf.",
        f"smtpd_tls_chain_files = {TLS_DIR}/key.pem, {TLS_DIR}/cert.pem",
        f"smtpd_tls_protocols = {tls_protocols}",
        f"smtpd_tls_mandatory_protocols = {tls_protocols}",
        "smtpd_tls_loglevel = 1",
        "smtpd_sasl_type = cyrus",
        "smtpd_sasl_path = smtpd",
        f"cyrus_sasl_config_path = {SASL_DIR}",
        f"smtpd_sasl_local_domain = {REALM}",
        "smtpd_sasl_security_options = noanonymous",
        "smtpd_sasl_tls_security_options = noanonymous",
        "smtpd_tls_auth_only = yes",
        "smtpd_sasl_authenticated_header = no",
        f"smtpd_client_message_rate_limit = {settings.message_rate_limit}",
        "anvil_rate_time_unit = 60s",
    ]
    if settings.scope_senders:
        lines.append(f"smtpd_sender_login_maps = regexp:{SENDER_LOGINS}")
    return "\n".join(lines) + "\n"


def _master_cf(settings: HubSettings) -> str:
    sender = ("reject_authenticated_sender_login_mismatch" if settings.scope_senders else "")
    common = [
        "-o smtpd_sasl_auth_enable=yes",
        "-o smtpd_client_restrictions=",
        "-o smtpd_helo_restrictions=",
        f"-o smtpd_sender_restrictions={sender}",
        # Unauthenticated clients get 554 5.7.1 Relay access denied; nothing is local here.
        "-o smtpd_relay_restrictions=permit_sasl_authenticated,reject_unauth_destination",
        "-o smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
        "-o mynetworks=",
    ]
    services = [
        (settings.starttls_port, "hub-starttls", ["-o smtpd_tls_security_level=encrypt"]),
        (settings.implicit_port, "hub-tls", ["-o smtpd_tls_wrappermode=yes",
                                             "-o smtpd_tls_security_level=encrypt"]),
    ]
    out = [BLOCK_BEGIN]
    for port, name, tls in services:
        out.append(f"{settings.listen}:{port} inet n - n - - smtpd")
        out += [f"  {option}" for option in [f"-o syslog_name=postfix/{name}", *tls, *common]]
    out.append(BLOCK_END)
    return "\n".join(out) + "\n"


def _smtpd_conf(settings: HubSettings) -> str:
    return ("pwcheck_method: auxprop\n"
            "auxprop_plugin: sasldb\n"
            f"sasldb_path: {SASL_DB}\n"
            f"mech_list: {' '.join(settings.sasl_mechanisms)}\n")


def _sender_logins(clients: list[HubClient]) -> str:
    owners: dict[str, list[str]] = {}
    for client in sorted(clients, key=_login):
        for pattern in sender_patterns(client):
            # Postfix names a Cyrus login with its realm (smtpd_sasl_local_domain).
            owners.setdefault(pattern, []).append(f"{client.login}@{REALM}")
    return "".join(f"{pattern} {', '.join(logins)}\n" for pattern, logins in sorted(owners.items()))
