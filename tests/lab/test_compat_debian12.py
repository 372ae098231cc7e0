"""Debian 12 compatibility on a real booted bookworm VM, inside the session's Debian 13 lab.

The module boots `old1` (Debian 12, group relays, the lab's sink and collector) when it starts
and removes it when it ends, so no other module deploys to it or waits for it. Deploys are
limited to old1. Its inventory position gives it one of the sink's ports (2525 STARTTLS with two Debian 13
relays before it); the other two port modes are deployed over it in turn, after the zero-change
second deploy.
"""

from __future__ import annotations

import pytest

from mailagent.lab import ssh, vm
from mailagent.lab import state as lab_state
from mailagent.lab.mail import send_mail, wait_received
from tests.lab.helpers import changed_operations, deploy
from tests.lab.test_e2e_fleet import host_view, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]
HOST = "old1"
ONLY = ("--limit", HOST)
# inventories/lab.py gives relays the sink's ports in this order by their position in the group.
SINK_PORTS = (2587, 2465, 2525)
KIND = {2587: "starttls", 2525: "starttls", 2465: "implicit"}


@pytest.fixture(scope="module")
def old(lab, tmp_path_factory):
    """(state, folder, first deploy) with old1 booted on Debian 12 and deployed."""
    vm.add_hosts(lab, {HOST: "12"}, progress=lambda msg: print(f"compat: {msg}", flush=True))
    try:
        folder = tmp_path_factory.mktemp("compat-deploys")
        first = deploy(lab, folder, args=ONLY)
        yield lab, folder, first
    finally:
        vm.remove_hosts(lab, [HOST])


def test_old1_runs_debian_12(old):
    state, _, _ = old
    assert lab_state.host(state, HOST)["os"] == {"id": "debian", "version": "12", "suite": "bookworm"}
    rc, out, err = ssh.run(state, HOST, ". /etc/os-release; echo $VERSION_ID $VERSION_CODENAME")
    assert (rc, out.strip()) == (0, "12 bookworm"), err


def test_site_deploy_succeeds(old):
    _, _, first = old
    assert first.returncode == 0, first.stdout[-4000:]
    assert f"[{HOST}]" in first.stdout


def test_mail_arrives_over_tls_with_auth_on_its_inventory_port(old):
    state, _, _ = old
    _assert_delivered(state, _inventory_port(state))


def test_agent_reports_to_the_collector(old):
    state, _, _ = old
    view = wait_for(lambda: _view(state), lambda v: v and v["last_seen"], "a report from old1")
    latest = view["latest"]
    assert latest["postfix"]["master_running"] is True
    assert latest["postfix"]["relay_actual"] == latest["postfix"]["relay_expected"]
    assert latest["failed_checks"] == [], [c for c in latest.get("checks", []) if not c.get("success")]


def test_second_deploy_changes_nothing(old):
    state, folder, _ = old
    result = deploy(state, folder, args=ONLY)
    assert result.returncode == 0, result.stdout[-4000:]
    changed = changed_operations(result.stdout)
    assert changed == {}, f"second deploy changed: {changed}"


def test_mail_arrives_over_tls_with_auth_on_each_other_port_mode(old):
    state, folder, _ = old
    others = [port for port in SINK_PORTS if port != _inventory_port(state)]
    for port in others:
        result = deploy(state, folder, {HOST: {"port": port}}, args=ONLY)
        assert result.returncode == 0, result.stdout[-4000:]
        _assert_delivered(state, port)
    assert {KIND[p] for p in (*others, _inventory_port(state))} == {"starttls", "implicit"}


def _inventory_port(state: dict) -> int:
    relays = [e["name"] for e in state["hosts"] if e["group"] == "relays"]
    return SINK_PORTS[relays.index(HOST) % len(SINK_PORTS)]


def _assert_delivered(state: dict, port: int) -> None:
    message_id = send_mail(state, HOST, subject=f"Debian 12 via {port}")
    records = wait_received(state, [message_id])[message_id]
    assert len(records) == 1, records
    record = records[0]
    assert record["tls"] is True and record["tls_version"], record
    assert record["auth_user"] == state["sink"]["username"]
    assert (record["port"], record["kind"]) == (port, KIND[port])


def _view(state: dict) -> dict | None:
    try:
        return host_view(state, HOST)
    except StopIteration:  # not registered yet
        return None
