"""The sink's record shapes, from real-format input (no server needed)."""

from __future__ import annotations

from mailagent.lab.sink_records import connection_record, header_summary

# As Postfix on a lab relay hands a message on: its own Received on top, folded.
POSTFIX_MESSAGE = (
    b"Received: by relay1.lab.mailagent.test (Postfix, from userid 0)\r\n"
    b"\tid 4Fx2Yz0abcz9sZ; Sat, 21 Nov 2026 11:00:00 +0000 (UTC)\r\n"
    b"Received: from app (localhost [127.0.0.1])\r\n\tby relay1 with ESMTP\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= report\r\n"
    b"To: <ops@dest.test>\r\nFrom: root <root@relay1.lab.mailagent.test>\r\n"
    b"Message-Id: <20261121110000.4Fx2Yz0abcz9sZ@relay1.lab.mailagent.test>\r\n"
    b"Date: Sat, 21 Nov 2026 11:00:00 +0000 (UTC)\r\n\r\nbody\r\n"
)


def test_header_summary_takes_the_top_received_first_line_and_any_header_case():
    assert header_summary(POSTFIX_MESSAGE) == {
        "received": "by relay1.lab.mailagent.test (Postfix, from userid 0)",
        "subject": "=?utf-8?q?caf=C3=A9?= report",  # as sent: a test compares what it wrote
        "to": "<ops@dest.test>", "from": "root <root@relay1.lab.mailagent.test>",
        "message_id": "<20261121110000.4Fx2Yz0abcz9sZ@relay1.lab.mailagent.test>",
        "date": "Sat, 21 Nov 2026 11:00:00 +0000 (UTC)",
    }


def test_header_summary_of_a_headerless_message_is_all_none():
    assert set(header_summary(b"\r\njust a body\r\n").values()) == {None}


def test_connection_record_defaults_and_error_cause():
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("TLS setup failed") from inner
    except RuntimeError as outer:
        error = outer
    tls = {"tls": False, "tls_version": None, "tls_cipher": None}
    rec = connection_record("t0", "starttls", ("127.0.0.1", 2525), ("127.0.0.1", 40000), tls, error, starttls=True)
    assert rec["error"] == "ConnectionResetError: [Errno 104] Connection reset by peer"
    assert (rec["port"], rec["peer"], rec["peer_port"], rec["starttls"]) == (2525, "127.0.0.1", 40000, True)
    assert (rec["auth_attempts"], rec["auth_user"], rec["messages"], rec["tls"]) == (0, None, 0, False)
