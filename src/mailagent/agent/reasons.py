"""Class a delay reason ("connect to x[1.2.3.4]:587: Connection refused") and pull its DSN code.

Data, not code: RULES is checked in order, first match wins. Authentication and TLS come before
the generic reply classes because their replies also carry 4xx/5xx codes.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from mailagent.report import ReasonClass

RULES: tuple[tuple[ReasonClass, re.Pattern], ...] = tuple((cls, re.compile(rx, re.I)) for cls, rx in (
    (ReasonClass.auth_failed, r"SASL authentication failed|authentication (failed|required)|"
                              r"\b535\b|\b534[ -]5\.7\.9|5\.7\.8|5\.7\.139|no mechanism available|"
                              r"SASL login failed"),
    (ReasonClass.tls_failure, r"TLS is required|Cannot start TLS|TLS handshake|STARTTLS|"
                              r"certificate verification failed|certificate not verified|"
                              r"while performing the TLS|TLS not available|\bSSL_"),
    (ReasonClass.dns, r"Host or domain name not found|Name service error|"
                      r"Host not found|No MX|DNS|type=(A|AAAA|MX) "),
    (ReasonClass.connection_refused, r"Connection refused|No route to host|Network is unreachable|"
                                     r"Connection reset"),
    (ReasonClass.timeout, r"timed out|Timeout"),
    (ReasonClass.throttled, r"said: 4\d\d|\b4\d\d[ -]4\.\d|rate limit|too many|try again later|"
                            r"delivery temporarily suspended"),
    (ReasonClass.rejected, r"said: 5\d\d|\b5\d\d[ -]5\.\d"),
))
DSN = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")

HINTS = MappingProxyType({
    ReasonClass.auth_failed: "the smarthost refused the credentials: check user/password "
                             "(sasl_passwd) and the provider's SMTP AUTH settings",
    ReasonClass.tls_failure: "TLS could not be set up: check tls mode/port and the CA file",
    ReasonClass.connection_refused: "nothing accepts connections there: smarthost down, wrong "
                                    "host/port, or a firewall rejecting",
    ReasonClass.timeout: "the connection timed out: the port is probably blocked (use 2525/2587/"
                         "2465) or the smarthost is unreachable",
    ReasonClass.throttled: "the smarthost answered 4xx (rate limit or temporary failure); mail retries",
    ReasonClass.rejected: "the smarthost answered 5xx; the mail will bounce: check sender and "
                          "recipient policy (SES sandbox, unverified sender)",
    ReasonClass.dns: "the smarthost name does not resolve: check relayhost and DNS",
    ReasonClass.other: "see `mailq` for the full reason",
})


def classify(reason: str) -> ReasonClass:
    """The reason class of one delay_reason text."""
    for cls, pattern in RULES:
        if pattern.search(reason):
            return cls
    return ReasonClass.other


def dsn_code(reason: str) -> str | None:
    """The enhanced status code (4.4.1) in a reason, if any."""
    match = DSN.search(reason)
    return match.group(1) if match else None
