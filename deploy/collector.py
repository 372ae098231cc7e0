"""The collector: `pyinfra inventories/<env>.py deploy/collector.py` (hosts of group `collector`).

Deploy it before the relays: their agents register with it when they are installed.
"""

from pyinfra import host

from roles.collector import install_collector

if "collector" in host.groups:
    install_collector()
