"""The whole site, by inventory group: `pyinfra inventories/<env>.py deploy/site.py`.

collector -> the collector service (first, so agents can register with it);
hub       -> the central relay hub (Postfix accepting authenticated fleet mail) and its agent;
relays    -> relay-only Postfix and the queue-health agent (hosts of inventories without role
             groups get them too).
First, on the control machine, the sender domains' DNS is checked (host data `dns_check`,
roles/dns_readiness.py). Every host then gets its static /etc/hosts entries (host data
`etc_hosts`), if any; every Postfix host checks its smarthost last, once the hub this deploy
sets up is serving.
"""

from pyinfra import host

from roles.collector import install_collector
from roles.dns_readiness import dns_preflight
from roles.mailagent import install_agent
from roles.postfix_hub import postfix_hub
from roles.postfix_relay import check_smarthost, postfix_relay
from roles.postfix_relay.validate import wants_relay
from roles.static_hosts import static_hosts

dns_preflight()
static_hosts()
if "collector" in host.groups:
    install_collector()
if "hub" in host.groups:
    postfix_hub(check=False)
    install_agent(role="hub")
elif wants_relay(host):
    postfix_relay(check=False)
    install_agent()
if "hub" in host.groups or wants_relay(host):
    check_smarthost()
