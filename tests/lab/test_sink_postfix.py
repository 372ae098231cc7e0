"""A real Postfix on this host relays through the sink: verified TLS, SASL, deferral and retry.

A private Postfix instance (its own config, queue and log in a temp folder; smtpd only on a
free loopback port) is the null client here, so these tests need no VM. Not lab-marked.
"""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from mailagent.lab import sink
from mailagent.relay.check import check_relay
from mailagent.relay.parse import parse_profile
from mailagent.relay.render import render
from mailagent.relay.target import Target

pytestmark = pytest.mark.timeout(120)

SERVICES = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Postfix:
    """One private Postfix instance rooted in `root` (world-traversable: its daemons run as postfix)."""

    def __init__(self, root: Path, info: dict) -> None:
        self.root, self.etc, self.info = root, root / "etc", info
        self.port = free_port()
        for sub in ("etc", "spool", "lib"):
            (root / sub).mkdir()
        shutil.chown(root / "lib", "postfix")
        shutil.copy(info["ca_cert"], self.etc / "lab-ca.pem")
        (self.etc / "master.cf").write_text(SERVICES.format(listen=f"127.0.0.1:{self.port}"))
        (self.etc / "main.cf").write_text("\n".join(f"{k} = {v}" for k, v in self.base().items()) + "\n")

    def base(self) -> dict:
        return {
            "compatibility_level": "3.6", "config_directory": self.etc, "queue_directory": self.root / "spool",
            "data_directory": self.root / "lib", "maillog_file": self.root / "maillog",
            "maillog_file_prefixes": self.root, "myhostname": "relay-test.lab.mailagent.test",
            "mydestination": "", "alias_maps": "", "alias_database": "", "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4", "mynetworks": "127.0.0.0/8", "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_security_options": "noanonymous", "smtp_sasl_tls_security_options": "noanonymous",
            "smtp_tls_security_level": "secure", "smtp_tls_CAfile": self.etc / "lab-ca.pem",
            "smtp_tls_loglevel": "1",
        }

    def postfix(self, *args: str) -> None:
        subprocess.run(["postfix", "-c", str(self.etc), *args], check=True, capture_output=True, timeout=60)

    def relay_to(self, port: int, *, wrapper: bool = False, match: str = sink.DEFAULT_HOSTNAME,
                 mechanisms: str = "") -> None:
        """Point the instance at a sink port (as the relay role would) and reload."""
        nexthop = f"[127.0.0.1]:{port}"
        settings = {
            "relayhost": nexthop, "smtp_tls_wrappermode": "yes" if wrapper else "no",
            "smtp_tls_secure_cert_match": match, "smtp_sasl_mechanism_filter": mechanisms,
            "smtp_sasl_password_maps": f"inline:{{ {nexthop}={self.info['username']}:{self.info['password']} }}",
        }
        subprocess.run(["postconf", "-c", str(self.etc), "-e", *(f"{k}={v}" for k, v in settings.items())],
                       check=True, capture_output=True, timeout=30)
        self.postfix("reload")

    def relay_as_profiled(self, port: int) -> dict:
        """Point the instance at a sink STARTTLS port with the TLS and SASL settings `render`
        writes for a relay profile (tls = starttls, tls_verify = secure); the maps and CA file
        stay this instance's own. Returns the settings taken from the profile."""
        profile = parse_profile({"provider": "custom", "host": "127.0.0.1", "port": port, "tls": "starttls",
                                 "tls_verify": "secure", "ca_file": str(self.etc / "lab-ca.pem"),
                                 "username": self.info["username"], "password": self.info["password"],
                                 "tls_connection_reuse": False}, environ={})
        lines = render(profile, Target(postfix_version=postfix_version()))["main.cf"].splitlines()
        own = ("smtp_sasl_password_maps", "smtp_tls_CAfile")
        taken = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines)
                 if k.strip().startswith(("smtp_tls_", "smtp_sasl_")) and k.strip() not in own}
        self.relay_to(port)
        subprocess.run(["postconf", "-c", str(self.etc), "-e", *(f"{k}={v}" for k, v in taken.items())],
                       check=True, capture_output=True, timeout=30)
        self.postfix("reload")
        return taken

    def submit(self, tag: str) -> tuple[str, str]:
        """Hand a message to the instance's smtpd; returns (Message-ID, Postfix queue id)."""
        msg_id = f"<{tag}.{uuid.uuid4().hex}@relay-test.lab.mailagent.test>"
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            smtp.ehlo("app.test")
            assert smtp.mail("app@relay-test.lab.mailagent.test")[0] == 250
            assert smtp.rcpt("ops@dest.test")[0] == 250
            code, reply = smtp.data(f"Subject: {tag}\r\nMessage-ID: {msg_id}\r\n\r\nvia postfix\r\n".encode())
        assert code == 250, reply
        return msg_id, reply.decode().rsplit(" ", 1)[-1]  # "2.0.0 Ok: queued as 4Fx..."

    def queued(self, queue_id: str) -> dict | None:
        """`postqueue -j`'s record of one message, or None once it left the queue."""
        out = subprocess.run(["postqueue", "-c", str(self.etc), "-j"], check=True, capture_output=True,
                             text=True, timeout=30).stdout
        found = [json.loads(line) for line in out.splitlines() if line.strip()]
        return next((q for q in found if q["queue_id"] == queue_id), None)

    def deferred(self, queue_id: str) -> dict | None:
        entry = self.queued(queue_id)
        return entry if entry and entry["queue_name"] == "deferred" else None

    def flush(self) -> None:
        subprocess.run(["postqueue", "-c", str(self.etc), "-f"], check=True, capture_output=True, timeout=30)


def postfix_version() -> tuple[int, int]:
    out = subprocess.run(["postconf", "-d", "-h", "mail_version"], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    major, minor = out.strip().split(".")[:2]
    return int(major), int(minor)


def wait_for(fetch, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := fetch():
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s")


@pytest.fixture(scope="module")
def sink_lab(tmp_path_factory):
    lab = tmp_path_factory.mktemp("sinklab")
    info = sink.spawn(lab, starttls_ports=(0, 0), implicit_ports=(0,))
    yield lab, info
    sink.stop(lab)


@pytest.fixture(scope="module")
def postfix(sink_lab):
    root = Path(tempfile.mkdtemp(prefix="mailagent-postfix-"))
    os.chmod(root, 0o755)
    instance = Postfix(root, sink_lab[1])
    try:
        instance.postfix("start")
        yield instance
    finally:
        subprocess.run(["postfix", "-c", str(instance.etc), "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def delivered(lab: Path, msg_id: str) -> dict:
    return wait_for(lambda: [m for m in sink.messages(lab) if m["headers"]["message_id"] == msg_id], msg_id)[0]


@pytest.mark.parametrize("kind,which,wrapper,mechanisms,expected", [
    ("starttls", 0, False, "", "CRAM-MD5"),  # Cyrus SASL picks the strongest mechanism offered
    ("starttls", 1, False, "login", "LOGIN"),
    ("implicit", 0, True, "plain", "PLAIN"),
])
def test_postfix_relays_with_verified_tls_and_auth(sink_lab, postfix, kind, which, wrapper, mechanisms, expected):
    lab, info = sink_lab
    port = info["ports"][kind][which]
    postfix.relay_to(port, wrapper=wrapper, mechanisms=mechanisms)
    rec = delivered(lab, postfix.submit(f"postfix-{kind}-{expected}")[0])
    assert rec["tls"] and rec["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert (rec["port"], rec["kind"]) == (port, kind)
    assert (rec["auth_user"], rec["auth_mechanism"]) == (info["username"], expected)
    assert rec["helo"] == "relay-test.lab.mailagent.test" and rec["headers"]["received"].startswith("from ")


def test_postfix_refusing_the_certificate_sends_no_password_and_keeps_the_mail(sink_lab, postfix):
    lab, info = sink_lab
    port = info["ports"]["starttls"][0]
    auth_before, conns_before = len(sink.auth_attempts(lab)), len(sink.connections(lab))
    postfix.relay_to(port, match="wrong-name.lab.mailagent.test")
    msg_id, queue_id = postfix.submit("postfix-wrong-name")
    entry = wait_for(lambda: postfix.deferred(queue_id), "deferred mail")
    assert entry["recipients"][0]["delay_reason"] == "Server certificate not verified"
    # Postfix finishes the handshake, then checks the name and hangs up: TLS may count as
    # done on our side, but not one AUTH line came.
    refused = wait_for(lambda: sink.connections(lab)[conns_before:], "connection")
    assert [(c["port"], c["starttls"], c["auth_attempts"], c["messages"]) for c in refused] == [(port, True, 0, 0)]
    assert len(sink.auth_attempts(lab)) == auth_before
    postfix.relay_to(port)  # the operator fixes the name; the queued mail goes out on the next run
    postfix.flush()
    assert delivered(lab, msg_id)["tls"]
    assert wait_for(lambda: postfix.queued(queue_id) is None, "empty queue")


def test_postfix_queues_on_tempfail_and_delivers_after(sink_lab, postfix):
    lab, info = sink_lab
    postfix.relay_to(info["ports"]["starttls"][1])
    sink.set_mode(lab, "tempfail")
    try:
        msg_id, queue_id = postfix.submit("postfix-tempfail")
        entry = wait_for(lambda: postfix.deferred(queue_id), "deferred mail")
        assert "451 4.7.1" in entry["recipients"][0]["delay_reason"]
    finally:
        sink.set_mode(lab, "normal")
    postfix.flush()
    assert delivered(lab, msg_id)["auth_user"] == info["username"]
    assert wait_for(lambda: postfix.queued(queue_id) is None, "empty queue")


def test_smarthost_without_starttls_keeps_the_mail_and_never_gets_the_password(sink_lab, postfix):
    lab, info = sink_lab
    port = info["ports"]["starttls"][1]
    auth_before, conns_before = len(sink.auth_attempts(lab)), len(sink.connections(lab))
    taken = postfix.relay_as_profiled(port)
    assert (taken["smtp_tls_security_level"], taken["smtp_tls_wrappermode"]) == ("secure", "no")
    sink.set_mode(lab, "no-starttls")
    try:
        msg_id, queue_id = postfix.submit("postfix-no-starttls")
        entry = wait_for(lambda: postfix.deferred(queue_id), "deferred mail")
        assert "TLS is required, but was not offered" in entry["recipients"][0]["delay_reason"]
        seen = wait_for(lambda: sink.connections(lab)[conns_before:], "connection")
        assert [(c["port"], c["tls"], c["auth_attempts"], c["messages"]) for c in seen] == [(port, False, 0, 0)]
        assert sink.auth_attempts(lab)[auth_before:] == []  # not even an AUTH refused in clear

        result = check_relay("127.0.0.1", port, "starttls", info["username"], info["password"],
                             info["ca_cert"], timeout=10)
        assert (result["ok"], result["step"]) == (False, "starttls")
        assert [s["step"] for s in result["steps"]] == ["connect", "ehlo"]
        assert "no STARTTLS offered" in result["hint"] and "sends no password" in result["hint"]
        assert sink.auth_attempts(lab)[auth_before:] == []
    finally:
        sink.set_mode(lab, "normal")
    postfix.flush()  # STARTTLS is back: the queued mail goes out, over TLS, logged in
    rec = delivered(lab, msg_id)
    assert rec["tls"] and rec["auth_user"] == info["username"]
    assert wait_for(lambda: postfix.queued(queue_id) is None, "empty queue")
