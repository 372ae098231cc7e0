"""The hub topology on real VMs: fleet -> hub -> sink, refusal and scoping at the hub, and a
fleet host drained to the hub and destroyed while the sink is down, losing nothing.

Runs last in the session (conftest LAST): it destroys relay2.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from pathlib import Path

import pytest

from mailagent.control.hub import credentials
from mailagent.lab import sink, ssh, vm
from mailagent.lab.mail import flush, queue, send_mail, wait_deferred, wait_received
from tests.lab.helpers import deploy, restart_sink, wait_for
from tests.lab.test_e2e_fleet import api, host_view

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]
HUB = "hub.lab.mailagent.test"
MAILAGENT = "/opt/mailagent/venv/bin/mailagent"


def via_hub(port: int) -> dict:
    return {"provider": "hub", "host": HUB, "port": port, "tls_verify": "secure", "host_lookup": "native"}


@pytest.fixture(scope="module")
def hub_fleet(deployed):
    """Both relays deployed to submit to the hub (relay1 on 1587 STARTTLS, relay2 on 1465)."""
    state, folder, _ = deployed
    result = deploy(state, folder, replace={"relay1": via_hub(1587), "relay2": via_hub(1465)})
    assert result.returncode == 0, result.stdout[-3000:]
    return state, folder


def test_fleet_mail_reaches_the_sink_through_the_hub(hub_fleet):
    state, _ = hub_fleet
    ids = {host: send_mail(state, host, subject=f"via the hub from {host}") for host in ("relay1", "relay2")}
    found = wait_received(state, ids.values())
    assert {mid: len(r) for mid, r in found.items()} == {mid: 1 for mid in ids.values()}
    # The sink saw the hub's login, and each relay's own log shows the hand-off to the hub.
    assert {r[0]["auth_user"] for r in found.values()} == {state["sink"]["username"]}
    for host, port in (("relay1", 1587), ("relay2", 1465)):
        rc, out, _ = ssh.run(state, host, "journalctl -q -o cat SYSLOG_FACILITY=2 | grep 'status=sent'")
        assert f"relay={HUB}[10.0.2.2]:{port}" in out, out[-2000:]


def test_hub_refuses_unauthenticated_relay_on_both_ports(lab):
    for port, implicit in ((1587, False), (1465, True)):
        with _connect(lab, port, implicit) as client:
            code, _ = client.mail("root@relay1.localdomain")
            assert code == 250
            code, reply = client.rcpt("someone@example.com")
            assert (code, reply[:5]) == (554, b"5.7.1"), reply


def test_hub_offers_auth_only_inside_tls(lab):
    with smtplib.SMTP("127.0.0.1", 1587, timeout=60) as client:
        client.ehlo("probe.lab.mailagent.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")


def test_hub_logins_are_scoped_to_their_own_senders(lab):
    """Chosen scoping: a login may only use its host's sender domain (and its configured sender
    addresses), so relay2's credentials cannot send as relay1 (553 5.7.1)."""
    folder = Path(lab["sink"]["ca_cert"]).parent
    own, other = (credentials.password_for(folder, name) for name in ("relay1", "relay2"))
    with _connect(lab, 1587) as client:
        client.user, client.password = "relay2", other
        assert client.auth("PLAIN", client.auth_plain)[0] == 235
        client.mail("root@relay1.localdomain")
        code, reply = client.rcpt("someone@example.com")
        assert (code, reply[:5]) == (553, b"5.7.1"), reply
    for mechanism in ("CRAM-MD5", "LOGIN"):
        with _connect(lab, 1465, implicit=True) as client:
            client.user, client.password = "relay1", own
            method = client.auth_cram_md5 if mechanism == "CRAM-MD5" else client.auth_login
            assert client.auth(mechanism, method)[0] == 235
            client.mail("root@relay1.localdomain")
            assert client.rcpt("someone@example.com")[0] == 250
            client.rset()
    with _connect(lab, 1587) as client, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        client.login("relay1", "not-the-password")
    assert refused.value.smtp_code == 535


def test_sink_down_mail_waits_at_the_hub_a_drained_host_is_destroyed_nothing_is_lost(hub_fleet):
    state, folder = hub_fleet
    # relay2 goes back to the sink directly, with the hub as its drain relay (the lab default).
    assert deploy(state, folder, args=("--limit", "relay2")).returncode == 0
    sink.stop(Path(state["lab_dir"]))
    try:
        through_hub = [send_mail(state, "relay1", subject=f"hub holds {n}") for n in range(3)]
        wait_for(lambda: len(queue(state, "relay1")), lambda n: n == 0, "relay1 to hand its mail to the hub")
        assert len(wait_deferred(state, "hub", 3)) >= 3
        stranded = [send_mail(state, "relay2", subject=f"drained {n}") for n in range(3)]
        assert len(wait_deferred(state, "relay2", 3)) == 3

        rc, out, err = ssh.run(state, "relay2", f"{MAILAGENT} drain --timeout 20 --handover-timeout 180",
                               timeout=400)
        assert rc == 0, out + err
        assert queue(state, "relay2") == []
        assert len(wait_deferred(state, "hub", 6)) >= 6
        drained = wait_for(lambda: host_view(state, "relay2"), lambda v: v.get("drained_at"),
                           "the collector to mark relay2 drained")
        vm.kill_hard(state, "relay2")
        Path(next(e for e in state["hosts"] if e["name"] == "relay2")["overlay"]).unlink()
    finally:
        restart_sink(state)
    flush(state, "hub")
    found = wait_received(state, through_hub + stranded, timeout=180)
    assert {mid: len(r) for mid, r in found.items()} == {mid: 1 for mid in through_hub + stranded}
    # Silent for more than three report intervals, yet no alert: it was drained on purpose.
    time.sleep(45)
    silent = [a for a in api(state, "/api/v1/alerts")["alerts"]
              if a["host"] == "relay2" and a["state"] == "firing"]
    assert silent == [], silent
    assert host_view(state, "relay2")["drained_at"] == drained["drained_at"]


def _connect(lab, port: int, implicit: bool = False) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=lab["sink"]["ca_cert"])
    if implicit:
        client = _SMTPSOverLoopback(HUB, port, context)
    else:
        client = smtplib.SMTP("127.0.0.1", port, timeout=60)
        client.ehlo("probe.lab.mailagent.test")
        client._host = HUB  # the name STARTTLS verifies against
        client.starttls(context=context)
    client.ehlo("probe.lab.mailagent.test")
    return client


class _SMTPSOverLoopback(smtplib.SMTP_SSL):
    """SMTP_SSL to the hub's forwarded port on loopback, verifying the hub's certificate name."""

    def __init__(self, name: str, port: int, context: ssl.SSLContext):
        self._name = name
        super().__init__("127.0.0.1", port, timeout=60, context=context)

    def _get_socket(self, host, port, timeout):
        import socket
        raw = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(raw, server_hostname=self._name)
