"""Mail log parsing on real-format lines of every kind, both timestamp formats."""

from __future__ import annotations

import pytest

from mailagent.agent.maillog import DeliveryCounter, parse_journal_entry, parse_syslog_line


def count(lines) -> DeliveryCounter:
    counter = DeliveryCounter()
    for line in lines:
        if (record := parse_syslog_line(line)) is not None:
            counter.add(record)
    return counter


def test_fixture_log_counts(fixtures):
    counter = count((fixtures / "mail.log").read_text().splitlines())
    assert counter.section().model_dump() == {
        "sent": 7,                # smtp x5 (one over a plain connection), relay/smtp, local
        "deferred": 3,            # smtp refused, postfix/error, SASL
        "bounced": 1,
        "expired": 1,
        "rejected": 2,            # NOQUEUE reject, milter-reject
        "sasl_auth_failures": 1,  # at the smarthost only; smtpd's inbound failure is not ours
        "tls_deliveries": 4,
        "plaintext_deliveries": 2,  # relay/smtp to port 25, and a new relay without TLS
    }


@pytest.mark.parametrize("line,program,daemon", [
    ("Nov 21 11:00:01 web1 postfix/smtp[1203]: x", "postfix/smtp", "smtp"),
    ("Nov  1 09:05:00 web1 postfix/relay/smtp[1400]: x", "postfix/relay/smtp", "smtp"),
    ("2026-11-21T11:00:04+01:00 web1 postfix-hub/smtp[1300]: x", "postfix-hub/smtp", "smtp"),
    ("2026-11-21T11:00:03.123456+00:00 h postfix/submission/smtpd[9]: x", "postfix/submission/smtpd", "smtpd"),
    ("2026-11-21T11:00:03Z h postfix/error[9]: x", "postfix/error", "error"),
])
def test_both_timestamp_formats_and_syslog_names(line, program, daemon):
    record = parse_syslog_line(line)
    assert (record.program, record.daemon, record.message) == (program, daemon, "x")


@pytest.mark.parametrize("line", [
    "Nov 21 11:01:09 web1 dovecot[77]: imap-login: Login",
    "Nov 21 11:01:09 web1 postfixadmin: something",
    "garbage",
    "",
])
def test_other_lines_are_ignored(line):
    assert parse_syslog_line(line) is None


def test_journal_entries():
    record = parse_journal_entry({"SYSLOG_IDENTIFIER": "postfix/smtp", "_PID": "12",
                                  "MESSAGE": "ABCDEF: to=<a@b>, relay=none, status=deferred (x)"})
    assert (record.daemon, record.pid) == ("smtp", "12")
    raw = parse_journal_entry({"SYSLOG_IDENTIFIER": "postfix/smtp", "MESSAGE": list(b"caf\xe9")})
    assert raw.message == "caf\ufffd"
    assert parse_journal_entry({"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "x"}) is None


def test_reset_keeps_tls_memory():
    counter = count([
        "Nov 21 11:00:02 w postfix/smtp[5]: Verified TLS connection established to s[1.2.3.4]:587: TLSv1.3",
    ])
    counter.reset()
    counter.add(parse_syslog_line(
        "Nov 21 11:00:03 w postfix/smtp[5]: A1B2C3: to=<a@b>, relay=s[1.2.3.4]:587, status=sent (ok)"))
    assert (counter.sent, counter.tls_deliveries, counter.plaintext_deliveries) == (1, 1, 0)
