"""Control-machine side of mailagent: what is built here and uploaded to hosts, and what the
deploy works out here before it touches a host.

    wheels, closure, projectwheel, targets   the wheel sets hosts install (`mailagent wheels`)
    pki_cli                                  `mailagent pki` (the fleet CA)
    hub/                                     the relay hub's settings, derived SASL logins, rendering
    dnscheck/                                `mailagent dns-check` and the deploy's DNS pre-flight
    settings_docs                            the READMEs' settings tables, from the models

Never installed on fleet hosts (the agent's project wheel leaves this subpackage out), and free
of pyinfra at import time (only dnscheck.inventory loads it, lazily, to read an inventory), so
the `mailagent` command can use it as well as the roles.
"""
