"""Per-sender routing on a real booted relay: two routes beside the default relay, one sink.

relay1 is deployed alone (`--limit`) with its default relay on 2525 (STARTTLS, the lab's login)
and two routes: `a.lab.test` over STARTTLS on 2587 as `route-a`, `b.lab.test` over implicit TLS
on 2465 as `route-b` (the sink accepts those logins besides its own). A message from each route's
domain and one from an unknown sender must arrive on the route's port with the route's login,
the unknown one the default way. The module ends by deploying relay1 as the lab has it.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from mailagent.lab import sink, ssh
from mailagent.lab.mail import wait_received
from tests.lab.helpers import deploy

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1200)]
HOST = "relay1"
ONLY = ("--limit", HOST)
LOGINS = {"route-a": secrets.token_urlsafe(12), "route-b": secrets.token_urlsafe(12)}


def route(state: dict, domain: str, port: int, user: str) -> dict:
    sink_info = state["sink"]
    return {"senders": [domain], "host": sink_info["hostname"], "port": port, "username": user,
            "password": LOGINS[user], "tls_verify": "secure",
            "ca_pem": Path(sink_info["ca_cert"]).read_text()}


@pytest.fixture(scope="module")
def routed(deployed, tmp_path_factory):
    """relay1 deployed with the two routes; put back as the lab has it afterwards."""
    state, _, _ = deployed
    folder = tmp_path_factory.mktemp("routes")
    lab_dir = Path(state["lab_dir"])
    sink.set_logins(lab_dir, LOGINS)
    routes = [route(state, "a.lab.test", 2587, "route-a"), route(state, "b.lab.test", 2465, "route-b")]
    try:
        # No --diff: pyinfra's diff reads a changed wheel as text and fails; tests/roles covers it.
        result = deploy(state, folder, {HOST: {"port": 2525, "sender_routes": routes}}, args=ONLY)
        yield state, result
    finally:
        restored = deploy(state, folder, args=ONLY)
        sink.set_logins(lab_dir, {})
        assert restored.returncode == 0, restored.stdout[-4000:]


def send_as(state: dict, sender: str, subject: str) -> str:
    """One message from `sender` (the envelope sender, -f) through relay1's sendmail."""
    message_id = f"<{secrets.token_hex(12)}@{HOST}.lab.mailagent.test>"
    text = f"From: {sender}\nTo: ops@example.com\nSubject: {subject}\nMessage-ID: {message_id}\n\nrouted\n"
    quoted = "'" + text.replace("'", "'\\''") + "'"
    rc, out, err = ssh.run(state, HOST, f"printf %s {quoted} | /usr/sbin/sendmail -i -f {sender} "
                           "ops@example.com", timeout=60)
    assert rc == 0, out + err
    return message_id


def test_each_sender_goes_its_own_way(routed):
    state, result = routed
    assert result.returncode == 0, result.stdout[-4000:]
    ways = {"app@a.lab.test": (2587, "starttls", "route-a"),
            "app@b.lab.test": (2465, "implicit", "route-b"),
            "app@elsewhere.lab.test": (2525, "starttls", state["sink"]["username"])}
    ids = {sender: send_as(state, sender, f"route test {sender}") for sender in ways}
    found = wait_received(state, ids.values())
    seen = {sender: [(r["port"], r["kind"], r["auth_user"], r["tls"], r["mail_from"])
                     for r in found[ids[sender]]] for sender in ways}
    assert seen == {sender: [(*way, True, sender)] for sender, way in ways.items()}


def test_route_passwords_stay_private(routed):
    state, result = routed
    for password in LOGINS.values():
        assert password not in result.stdout
    rc, out, _ = ssh.run(state, HOST, "stat -c '%a %U' /etc/postfix/sasl_passwd; "
                         "cat /etc/postfix/main.cf /etc/postfix/master.cf /etc/postfix/sender_relay")
    assert rc == 0 and out.startswith("600 root")
    assert not any(password in out for password in LOGINS.values())
