"""postqueue -j parsing (tolerant) and reason classes, on real-format fixture lines."""

from __future__ import annotations

import pytest

from mailagent.agent.postqueue import parse_line, summarise
from mailagent.agent.reasons import classify, dsn_code
from mailagent.report import ReasonClass


def lines(fixtures, name):
    return (fixtures / name).read_text(encoding="utf-8").splitlines()


def test_real_postfix_output(fixtures):
    detail = summarise(lines(fixtures, "postqueue-real-3.7.jsonl"))
    assert detail.messages == 4
    assert detail.bytes == 273 * 3 + 263
    assert detail.oldest_arrival == 1795259387
    # the hold message's recipient is not a deferred one
    assert detail.deferred_by_reason == {ReasonClass.connection_refused: 4}
    assert detail.destinations == {"example.net": 3, "example.com": 2}
    assert detail.bad_lines == 0


def test_odd_lines_are_tolerated_and_flagged(fixtures):
    detail = summarise(lines(fixtures, "postqueue-odd.jsonl"))
    assert detail.messages == 7  # duplicate queue ID counted once
    assert detail.bad_lines == 2  # prose line and the truncated last line
    assert detail.oldest_arrival == 1795240000  # from the hold message
    assert detail.deferred_by_reason == {
        ReasonClass.auth_failed: 1, ReasonClass.throttled: 1, ReasonClass.rejected: 1,
        ReasonClass.dns: 1, ReasonClass.timeout: 1, ReasonClass.tls_failure: 1,
        ReasonClass.other: 1}
    assert detail.deferred_by_dsn == {"5.7.8": 1, "4.7.0": 1, "5.1.1": 1}
    assert detail.destinations["example.net"] == 3  # Example.NET folded to lower case
    top = detail.top_destinations(2)
    assert [d.destination for d in top] == ["example.org", "example.com"]


def test_broken_escape_is_repaired():
    entry = parse_line('{"queue_name": "deferred", "queue_id": "ABCDEF", "arrival_time": 1, '
                       '"message_size": 1, "recipients": [{"address": "a@b", "delay_reason": "x\\u00 y\\q"}]}')
    assert entry.recipients[0].delay_reason == "x\\u00 y\\q"


def test_unknown_members_ignored_and_missing_ones_defaulted():
    entry = parse_line('{"queue_id": "ABCDEF", "brand_new": [1], "recipients": [{"address": "a@b"}]}')
    assert entry.arrival_time is None and entry.message_size == 0
    assert entry.recipients[0].delay_reason is None


@pytest.mark.parametrize("text", ["[1, 2]", '{"queue_name": "x"}', "{"])
def test_non_queue_lines_raise(text):
    with pytest.raises(ValueError):
        parse_line(text)


@pytest.mark.parametrize("reason,expected", [
    ("connect to smtp.example.com[192.0.2.10]:2587: Connection refused", ReasonClass.connection_refused),
    ("delivery temporarily suspended: connect to x[1.2.3.4]:25: Connection refused",
     ReasonClass.connection_refused),
    ("connect to x[1.2.3.4]:25: Connection timed out", ReasonClass.timeout),
    ("connect to x[1.2.3.4]:25: No route to host", ReasonClass.connection_refused),
    ("SASL authentication failed; server x[1.2.3.4] said: 535 5.7.8 bad", ReasonClass.auth_failed),
    ("host smtp.gmail.com[1.2.3.4] said: 534-5.7.9 Application-specific password required",
     ReasonClass.auth_failed),
    ("host x[1.2.3.4] said: 530 5.7.0 Authentication Required", ReasonClass.auth_failed),
    ("TLS is required, but our TLS engine is unavailable", ReasonClass.tls_failure),
    ("Server certificate not verified", ReasonClass.tls_failure),
    ("lost connection with x[1.2.3.4] while performing the TLS handshake", ReasonClass.tls_failure),
    ("host x[1.2.3.4] said: 454 4.7.0 TLS not available due to local problem", ReasonClass.tls_failure),
    ("host x[1.2.3.4] said: 451 4.3.0 Rate limit exceeded", ReasonClass.throttled),
    ("host x[1.2.3.4] said: 554 5.7.1 Message rejected: Email address is not verified",
     ReasonClass.rejected),
    ("Host or domain name not found. Name service error for name=x type=MX: Host not found, try again",
     ReasonClass.dns),
    ("mail transport unavailable", ReasonClass.other),
])
def test_reason_classes(reason, expected):
    assert classify(reason) == expected


def test_dsn_code():
    assert dsn_code("said: 550 5.1.1 <a@b>: unknown") == "5.1.1"
    assert dsn_code("connect to 192.0.2.10[192.0.2.10]:25: refused") is None
