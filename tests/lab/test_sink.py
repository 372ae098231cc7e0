"""The lab smarthost sink, as a real daemon on loopback, driven by Python's smtplib over real TLS.

No VMs: these are not lab-marked. One sink serves the module (free ports); the daemon tests
start their own.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
import time
import uuid

import pytest

from mailagent.lab import sink

pytestmark = pytest.mark.timeout(60)

CLIENT = "client.test"
WRONG_NAME = "wrong-name.lab.mailagent.test"
MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


class PinnedName(ssl.SSLContext):
    """A client context that checks the certificate for `name`, whatever address it dials
    (so no /etc/hosts entry is needed to test the sink's DNS name)."""

    name: str = sink.DEFAULT_HOSTNAME

    def wrap_socket(self, sock, *args, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, *args, server_hostname=self.name, **kwargs)


def trusting(info: dict, name: str = sink.DEFAULT_HOSTNAME) -> ssl.SSLContext:
    ctx = PinnedName(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    ctx.name = name
    ctx.load_verify_locations(info["ca_cert"])
    return ctx


@pytest.fixture(scope="module")
def sink_lab(tmp_path_factory):
    """(lab_dir, spawn() result) of one sink daemon on free loopback ports, stopped afterwards."""
    lab = tmp_path_factory.mktemp("sinklab")
    info = sink.spawn(lab, starttls_ports=(0, 0), implicit_ports=(0,))
    yield lab, info
    sink.stop(lab)


@pytest.fixture
def lab(sink_lab):
    """The module's sink, put back in normal mode after each test."""
    yield sink_lab
    sink.set_mode(sink_lab[0], "normal")


def starttls_client(info: dict, port: int, ctx: ssl.SSLContext | None = None) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT, timeout=10)
    smtp.starttls(context=ctx or trusting(info))
    smtp.ehlo(CLIENT)
    return smtp


def smtps_client(info: dict, port: int) -> smtplib.SMTP_SSL:
    return smtplib.SMTP_SSL("127.0.0.1", port, local_hostname=CLIENT, context=trusting(info), timeout=10)


def login(smtp: smtplib.SMTP, info: dict, mechanism: str = "PLAIN", password: str | None = None) -> None:
    smtp.ehlo_or_helo_if_needed()  # smtplib's auth() alone would get "503 send EHLO first"
    smtp.user, smtp.password = info["username"], password or info["password"]
    authobject = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login, "CRAM-MD5": smtp.auth_cram_md5}[mechanism]
    smtp.auth(mechanism, authobject)


def message(tag: str) -> tuple[str, bytes]:
    """(Message-ID, a small RFC 5322 message) as Postfix would hand it on, Received first."""
    msg_id = f"<{tag}.{uuid.uuid4().hex}@{CLIENT}>"
    text = (
        "Received: from app1 (localhost [127.0.0.1])\r\n\tby relay1.lab.mailagent.test (Postfix) with ESMTP\r\n"
        f"From: App <app@{CLIENT}>\r\nTo: Ops <ops@dest.test>\r\nSubject: sink test {tag}\r\n"
        f"Date: Sat, 21 Nov 2026 11:00:00 +0000\r\nMessage-ID: {msg_id}\r\n\r\nHello from {tag}.\r\n"
    )
    return msg_id, text.encode()


def received(lab, msg_id: str) -> dict:
    found = [m for m in sink.messages(lab) if m["headers"]["message_id"] == msg_id]
    assert len(found) == 1, f"expected one message {msg_id}, sink has {len(found)}"
    return found[0]


def wait_for(fetch, what: str, timeout: float = 10.0):
    """Poll `fetch` until it returns something truthy (connection records land at close)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := fetch():
            return found
        time.sleep(0.05)
    raise AssertionError(f"the sink recorded no {what} within {timeout} s")


@pytest.mark.parametrize("which", [0, 1])
def test_starttls_delivery_is_recorded_with_tls_auth_and_port(lab, which):
    lab_dir, info = lab
    port = info["ports"]["starttls"][which]
    msg_id, data = message(f"starttls{which}")
    with starttls_client(info, port) as smtp:
        login(smtp, info, "PLAIN")
        client_port = smtp.sock.getsockname()[1]
        assert smtp.sendmail("app@client.test", ["ops@dest.test", "dev@dest.test"], data) == {}
    rec = received(lab_dir, msg_id)
    assert rec["tls"] is True and rec["tls_version"] in ("TLSv1.2", "TLSv1.3") and rec["tls_cipher"]
    assert (rec["auth_user"], rec["auth_mechanism"]) == (info["username"], "PLAIN")
    assert (rec["port"], rec["kind"], rec["peer"], rec["peer_port"]) == (port, "starttls", "127.0.0.1", client_port)
    assert rec["mail_from"] == "app@client.test" and rec["rcpt_tos"] == ["ops@dest.test", "dev@dest.test"]
    assert rec["headers"] == {
        "message_id": msg_id, "subject": f"sink test starttls{which}", "from": f"App <app@{CLIENT}>",
        "to": "Ops <ops@dest.test>", "date": "Sat, 21 Nov 2026 11:00:00 +0000",
        "received": "from app1 (localhost [127.0.0.1])",
    }
    assert rec["size"] == len(data) and rec["helo"] == CLIENT and rec["received_at"]
    conn = wait_for(lambda: [c for c in sink.connections(lab_dir) if c["peer_port"] == client_port], "connection")
    assert conn[0]["tls"] and conn[0]["starttls"] and conn[0]["messages"] == 1
    assert conn[0]["auth_user"] == info["username"]


def test_implicit_tls_delivery_is_recorded(lab):
    lab_dir, info = lab
    port = info["ports"]["implicit"][0]
    msg_id, data = message("smtps")
    with smtps_client(info, port) as smtp:
        smtp.ehlo(CLIENT)
        assert "starttls" not in smtp.esmtp_features
        login(smtp, info, "LOGIN")
        smtp.sendmail("app@client.test", ["ops@dest.test"], data)
    rec = received(lab_dir, msg_id)
    assert rec["tls"] is True and rec["tls_version"].startswith("TLSv1.")
    assert (rec["port"], rec["kind"], rec["auth_user"], rec["auth_mechanism"]) == (
        port, "implicit", info["username"], "LOGIN")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_each_mechanism_logs_in(lab, mechanism):
    lab_dir, info = lab
    with starttls_client(info, info["ports"]["starttls"][0]) as smtp:
        assert set(smtp.esmtp_features["auth"].split()) == set(MECHANISMS)
        login(smtp, info, mechanism)
        client_port = smtp.sock.getsockname()[1]
    attempt = [a for a in sink.auth_attempts(lab_dir) if a["peer_port"] == client_port]
    assert [(a["user"], a["mechanism"], a["tls"], a["success"]) for a in attempt] == [
        (info["username"], mechanism, True, True)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_gives_535(lab, mechanism):
    lab_dir, info = lab
    with starttls_client(info, info["ports"]["starttls"][1]) as smtp:
        client_port = smtp.sock.getsockname()[1]
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            login(smtp, info, mechanism, password="not-the-password")
        assert refused.value.smtp_code == 535 and refused.value.smtp_error.startswith(b"5.7.8")
        assert smtp.mail("app@client.test")[0] == 530
    attempt = [a for a in sink.auth_attempts(lab_dir) if a["peer_port"] == client_port]
    assert [(a["user"], a["mechanism"], a["success"]) for a in attempt] == [(info["username"], mechanism, False)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_added_logins_are_accepted_and_recorded_per_message(lab, mechanism):
    lab_dir, info = lab
    sink.set_logins(lab_dir, {"route-a": "pw-a", "route-b": "pw-b"})
    try:
        for user, port in (("route-a", info["ports"]["starttls"][0]), ("route-b", info["ports"]["implicit"][0])):
            msg_id, data = message(f"{user}-{mechanism}")
            client = starttls_client if port in info["ports"]["starttls"] else smtps_client
            with client(info, port) as smtp:
                login(smtp, dict(info, username=user), mechanism, password=f"pw-{user[-1]}")
                smtp.sendmail(f"app@{user}.test", ["ops@dest.test"], data)
            assert (received(lab_dir, msg_id)["auth_user"], received(lab_dir, msg_id)["port"]) == (user, port)
        with starttls_client(info, info["ports"]["starttls"][0]) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError):  # one login's password, another's name
                login(smtp, dict(info, username="route-a"), mechanism, password="pw-b")
            login(smtp, info, mechanism)  # the lab's own login still works beside them
    finally:
        sink.set_logins(lab_dir, {})
    with starttls_client(info, info["ports"]["starttls"][0]) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login(smtp, dict(info, username="route-a"), mechanism, password="pw-a")
    assert (lab_dir / "sink" / "logins.json").exists() is False


def test_auth_before_starttls_is_refused_and_not_offered(lab):
    lab_dir, info = lab
    with smtplib.SMTP("127.0.0.1", info["ports"]["starttls"][0], local_hostname=CLIENT, timeout=10) as smtp:
        smtp.ehlo(CLIENT)
        assert "starttls" in smtp.esmtp_features and "auth" not in smtp.esmtp_features
        probe = base64.b64encode(b"\0lab-relay\0guess").decode()
        code, reply = smtp.docmd("AUTH", f"PLAIN {probe}")
        assert (code, reply) == (538, b"5.7.11 Encryption required for requested authentication mechanism")
        client_port = smtp.sock.getsockname()[1]
    attempt = [a for a in sink.auth_attempts(lab_dir) if a["peer_port"] == client_port]
    assert [(a["tls"], a["success"], a["user"]) for a in attempt] == [(False, False, None)]


def test_mail_without_auth_is_refused(lab):
    _, info = lab
    with smtplib.SMTP("127.0.0.1", info["ports"]["starttls"][0], local_hostname=CLIENT, timeout=10) as smtp:
        smtp.ehlo(CLIENT)
        assert smtp.mail("app@client.test") == (530, b"5.7.0 Authentication required")
    with starttls_client(info, info["ports"]["starttls"][0]) as smtp:
        assert smtp.mail("app@client.test") == (530, b"5.7.0 Authentication required")
    with smtps_client(info, info["ports"]["implicit"][0]) as smtp:
        smtp.ehlo(CLIENT)
        assert smtp.mail("app@client.test") == (530, b"5.7.0 Authentication required")


def test_tempfail_gives_4xx_then_normal_accepts_again(lab):
    lab_dir, info = lab
    msg_id, data = message("tempfail")
    sink.set_mode(lab_dir, "tempfail")
    with starttls_client(info, info["ports"]["starttls"][0]) as smtp:
        login(smtp, info)
        with pytest.raises(smtplib.SMTPSenderRefused) as deferred:
            smtp.sendmail("app@client.test", ["ops@dest.test"], data)
        assert deferred.value.smtp_code == 451 and deferred.value.smtp_error.startswith(b"4.7.1")
        sink.set_mode(lab_dir, "normal")  # switched while the client stays connected
        assert smtp.sendmail("app@client.test", ["ops@dest.test"], data) == {}
    assert received(lab_dir, msg_id)["tls"] is True


def test_reject_auth_gives_535_even_with_the_right_password(lab):
    lab_dir, info = lab
    sink.set_mode(lab_dir, "reject-auth")
    with smtps_client(info, info["ports"]["implicit"][0]) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            login(smtp, info, "PLAIN")
        assert refused.value.smtp_code == 535
        assert refused.value.smtp_error == b"5.7.8 Authentication credentials invalid"
    sink.set_mode(lab_dir, "normal")
    with smtps_client(info, info["ports"]["implicit"][0]) as smtp:
        login(smtp, info, "PLAIN")


def test_no_starttls_offers_neither_starttls_nor_auth_on_starttls_ports(lab):
    lab_dir, info = lab
    sink.set_mode(lab_dir, "no-starttls")
    with smtplib.SMTP("127.0.0.1", info["ports"]["starttls"][1], local_hostname=CLIENT, timeout=10) as smtp:
        smtp.ehlo(CLIENT)
        assert "starttls" not in smtp.esmtp_features and "auth" not in smtp.esmtp_features
        assert smtp.docmd("STARTTLS")[0] == 454  # a client that asks anyway
        assert smtp.mail("app@client.test")[0] == 530  # and nothing goes in the clear
    with smtps_client(info, info["ports"]["implicit"][0]) as smtp:  # SMTPS is not STARTTLS
        login(smtp, info, "PLAIN")
    sink.set_mode(lab_dir, "normal")
    with starttls_client(info, info["ports"]["starttls"][1]) as smtp:
        login(smtp, info)


def test_unknown_mode_is_refused(lab):
    with pytest.raises(ValueError, match="normal, tempfail, reject-auth"):
        sink.set_mode(lab[0], "sometimes")


def refused_handshake(info: dict, kind: str, ctx: ssl.SSLContext) -> int:
    """Try TLS with a client that must refuse the sink's certificate; returns its local port."""
    port = info["ports"][kind][0]
    if kind == "starttls":
        with smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT, timeout=10) as smtp:
            client_port = smtp.sock.getsockname()[1]
            with pytest.raises(ssl.SSLCertVerificationError):
                smtp.starttls(context=ctx)
            smtp.close()
        return client_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    client_port = sock.getsockname()[1]
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(sock, server_hostname=sink.DEFAULT_HOSTNAME)
    sock.close()
    return client_port


@pytest.mark.parametrize("kind", ["starttls", "implicit"])
@pytest.mark.parametrize("client", ["wrong-name", "system-cas-only"])
def test_refused_certificate_means_no_password_sent(lab, kind, client):
    lab_dir, info = lab
    ctx = trusting(info, WRONG_NAME) if client == "wrong-name" else ssl.create_default_context()
    before = len(sink.auth_attempts(lab_dir))
    client_port = refused_handshake(info, kind, ctx)
    conn = wait_for(lambda: [c for c in sink.connections(lab_dir) if c["peer_port"] == client_port], "connection")
    assert len(conn) == 1 and conn[0]["tls"] is False
    assert (conn[0]["auth_attempts"], conn[0]["auth_user"], conn[0]["messages"]) == (0, None, 0)
    assert conn[0]["kind"] == kind and conn[0]["starttls"] is (kind == "starttls")
    if kind == "implicit":
        assert conn[0]["error"]  # the failed handshake itself, as the server saw it
    assert len(sink.auth_attempts(lab_dir)) == before


def test_no_secret_reaches_any_log(lab):
    lab_dir, info = lab
    with starttls_client(info, info["ports"]["starttls"][0]) as smtp:
        login(smtp, info, "PLAIN")
    secret_forms = [info["password"], base64.b64encode(f"\0{info['username']}\0{info['password']}".encode()).decode()]
    sdir = lab_dir / "sink"
    for name in ("mail.jsonl", "auth.jsonl", "connections.jsonl", "sink.log", "config.json", "runtime.json"):
        text = (sdir / name).read_text()
        assert not any(form in text for form in secret_forms), name


def test_pipelined_envelope_is_answered_in_order(lab):
    """PIPELINING is offered, and MAIL, RCPT and DATA sent in one write get their three replies."""
    lab_dir, info = lab
    msg_id, data = message("pipelined")
    with starttls_client(info, info["ports"]["starttls"][0]) as smtp:
        assert "pipelining" in smtp.esmtp_features
        login(smtp, info)
        smtp.send(b"MAIL FROM:<app@client.test>\r\nRCPT TO:<ops@dest.test>\r\nDATA\r\n")
        assert [smtp.getreply()[0] for _ in range(3)] == [250, 250, 354]
        smtp.send(data + b".\r\n")
        assert smtp.getreply()[0] == 250
    assert received(lab_dir, msg_id)["rcpt_tos"] == ["ops@dest.test"]
