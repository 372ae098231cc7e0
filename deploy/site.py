"""The whole site, by inventory group: `pyinfra inventories/<env>.py deploy/site.py`.

relays -> relay-only Postfix and the queue-health agent (hosts of inventories without role
groups get them too).
"""

from pyinfra import host

from roles.mailagent import install_agent
from roles.postfix_relay import postfix_relay
from roles.postfix_relay.validate import wants_relay

if wants_relay(host):
    postfix_relay()
    install_agent()
