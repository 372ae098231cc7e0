"""The whole site, by inventory group: `pyinfra inventories/<env>.py deploy/site.py`.

relays -> relay-only Postfix (hosts of inventories without role groups get it too).
"""

from pyinfra import host

from roles.postfix_relay import postfix_relay
from roles.postfix_relay.validate import wants_relay

if wants_relay(host):
    postfix_relay()
