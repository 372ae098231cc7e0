"""Relay-only Postfix on every host: `pyinfra inventories/<env>.py deploy/relay.py`."""

from roles.postfix_relay import postfix_relay

postfix_relay()
