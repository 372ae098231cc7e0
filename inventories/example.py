"""A complete production inventory: copy it to inventories/production.py and edit the names.

    .venv/bin/mailagent pki init pki/fleet-ca         # once: the fleet CA, before any deploy reads it
    export SENDGRID_API_KEY=... SES_SMTP_PASSWORD=...   # the providers' secrets
    export MAILAGENT_REGISTRATION_TOKEN=... MAILAGENT_ADMIN_TOKEN=... MAILAGENT_READ_TOKEN=...
    # (make each token with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
    .venv/bin/pyinfra inventories/production.py deploy/site.py --dry
    .venv/bin/pyinfra inventories/production.py deploy/site.py -y

One run does it all, in the order that works: the collector first (agents register with it),
then the hub, then the relays; every Postfix host checks its smarthost last, once the hub is up.
Every module-level list below is an inventory group; helpers start with `_`. No secret is
written here: each comes from the environment when the inventory loads, and the deploy keeps it
out of its output (`--diff` included).
"""

import os

# SSH: a deploy user with passwordless sudo on every host (or ssh_user "root" and no _sudo).
_ssh = {"ssh_user": "deploy", "_sudo": True}

# The fleet CA made by `mailagent pki init` signs the collector's and the hub's certificates;
# agents and relays trust it. It is read when the deploy runs, not when this file loads.
_PKI = "pki/fleet-ca"
_collector = {
    "url": "https://collector.example.com:8480",
    "registration_token": os.environ["MAILAGENT_REGISTRATION_TOKEN"],  # adds new hosts only
    "admin_token": os.environ["MAILAGENT_ADMIN_TOKEN"],                # re-registers rebuilt hosts
    "ca_file": f"{_PKI}/ca.pem",
}
_common = {**_ssh, "collector": _collector, "mailagent_pki_dir": _PKI}

collector = [("collector.example.com", {
    **_common,
    "collector_server": {
        "read_token": os.environ["MAILAGENT_READ_TOKEN"],  # dashboard (basic auth), API, Prometheus
        "tls": {"ca_dir": _PKI, "names": ["collector.example.com"]},
        # PostgreSQL instead of the default SQLite, password from the environment too:
        # "database_url": "postgresql+psycopg://collector:" + os.environ["COLLECTOR_DB_PASSWORD"]
        #                 + "@db.example.com/collector",
    },
})]

# The hub takes the fleet's mail on 1587 (STARTTLS) / 1465 (implicit TLS) and relays it onward.
hub = [("relay-hub.example.com", {
    **_common,
    "relay": {"provider": "sendgrid", "port": 2525, "password_env": "SENDGRID_API_KEY"},
    "hub_server": {"names": ["relay-hub.example.com"]},
})]

# Fleet hosts submit to the hub with their own derived login; the hub's CA is trusted for them.
_via_hub = {"provider": "hub", "host": "relay-hub.example.com",
            "sender_address": "noreply@example.com", "forward_root_to": "ops@example.com"}
relays = [
    ("web1.example.com", {**_common, "relay": _via_hub}),
    ("web2.example.com", {**_common, "relay": _via_hub}),
    # A worker that relays to SES directly, with the hub as the place its queue goes when drained.
    ("worker1.example.com", {**_common, "relay": {
        "provider": "ses", "region": "eu-west-1", "port": 2587, "username": "AKIAEXAMPLESMTPUSER",
        "password_env": "SES_SMTP_PASSWORD", "sender_address": "noreply@example.com",
        "drain_relay": {"host": "relay-hub.example.com", "port": 1587},
    }, "mailagent": {"interval_seconds": 30}}),
]
