"""One real nsd for the module's tests, serving the zones in zones.py (written under tmp)."""

from __future__ import annotations

import pytest

from mailagent.control.dnscheck.resolve import Resolver
from tests.control.dnscheck.nsd import NSD, NsdServer
from tests.control.dnscheck.zones import ZONES


@pytest.fixture(scope="session")
def nsd(tmp_path_factory):
    import os
    if not os.path.exists(NSD):
        pytest.fail("nsd is not installed: `make deps` installs it (apt-packages.txt)")
    with NsdServer(tmp_path_factory.mktemp("nsd"), ZONES) as server:
        yield server


@pytest.fixture
def resolver(nsd):
    return Resolver(nsd.nameserver, timeout=2.0)
