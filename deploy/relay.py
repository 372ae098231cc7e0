"""Relay-only Postfix on every host: `pyinfra inventories/<env>.py deploy/relay.py`."""

from roles.dns_readiness import dns_preflight
from roles.postfix_relay import postfix_relay

dns_preflight()
postfix_relay()
