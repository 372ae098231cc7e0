"""Shared lab fixtures: one real lab of booted VMs per test session, always torn down.

The session lab runs Debian 13 (MAILAGENT_TEST_LAB_DEBIAN to change it); the Debian 12
compatibility module boots its own VM into this same lab (same sink and collector) only
when it runs, and removes it again afterwards.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from mailagent.lab import state as lab_state
from mailagent.lab import vm

# How many relay VMs the shared lab boots (the end-to-end tests need at least 2), besides the hub.
LAB_HOSTS = int(os.environ.get("MAILAGENT_TEST_LAB_HOSTS", "2"))
LAB_DEBIAN = os.environ.get("MAILAGENT_TEST_LAB_DEBIAN", "13")
# Modules that destroy lab VMs run after every other lab test, in this order (the cycle test
# takes the session lab down and brings a new one up in its folder).
LAST = ("test_e2e_hub.py", "test_lab_cycle.py")


def pytest_collection_modifyitems(items):
    # Stable: keeps the order otherwise.
    items.sort(key=lambda item: LAST.index(item.path.name) + 1 if item.path.name in LAST else 0)


def _with_sink() -> bool:
    """Whether the shared lab starts the sink: yes, unless MAILAGENT_TEST_LAB_SINK=0.

    The sink listens on fixed loopback ports (guests dial 10.0.2.2:2587 etc.), so only one lab
    per machine can have one; the switch lets VM-only tests run beside another lab.
    """
    if os.environ.get("MAILAGENT_TEST_LAB_SINK", "1") == "0":
        return False
    return importlib.util.find_spec("mailagent.lab.sink") is not None


@pytest.fixture(scope="session")
def lab(tmp_path_factory, request):
    """The state dict of a running lab (LAB_HOSTS relays, the sink when it exists).

    It lives in its own temp MAILAGENT_LAB_DIR (exported, so `pyinfra inventories/lab.py` and
    `mailagent lab ...` run by tests find it) and is brought down after the session, pass or fail.
    """
    # The relays' base deploy goes straight to the sink (the hub is their drain relay); the hub
    # tests point them at the hub themselves.
    os.environ["MAILAGENT_LAB_VIA"] = "sink"
    reuse = os.environ.get("MAILAGENT_TEST_LAB_REUSE")
    if reuse:  # a developer's running lab (`mailagent lab up`), left running afterwards
        os.environ["MAILAGENT_LAB_DIR"] = reuse
        return lab_state.load(reuse)
    folder = tmp_path_factory.mktemp("lab")
    previous = os.environ.get("MAILAGENT_LAB_DIR")
    os.environ["MAILAGENT_LAB_DIR"] = str(folder)

    def teardown() -> None:
        try:
            if lab_state.state_path(folder).exists():
                vm.down(folder, progress=lambda msg: print(f"lab fixture: {msg}"))
        finally:
            if previous is None:
                os.environ.pop("MAILAGENT_LAB_DIR", None)
            else:
                os.environ["MAILAGENT_LAB_DIR"] = previous

    request.addfinalizer(teardown)
    return vm.up(hosts=LAB_HOSTS, hub=True, sink=_with_sink(), lab_dir=folder, debian=LAB_DEBIAN,
                 progress=lambda msg: print(f"lab fixture: {msg}", flush=True))


def lab_processes(folder: Path) -> list[int]:
    """PIDs of live processes whose command line mentions the lab folder (QEMU, sink)."""
    pids = []
    marker = str(folder).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "cmdline").read_bytes() and vm.is_running(int(proc.name), str(folder)):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="session")
def deployed(lab, tmp_path_factory):
    """The lab after a first full site deploy: (state, a folder for inventories, its result)."""
    from tests.lab.helpers import deploy

    folder = tmp_path_factory.mktemp("deploys")
    result = deploy(lab, folder)
    assert result.returncode == 0, result.stdout[-3000:]
    return lab, folder, result
