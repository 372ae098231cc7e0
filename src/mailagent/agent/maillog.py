"""Parse Postfix log lines (pure): syslog lines in either timestamp format, or journal fields.

    Nov 21 11:00:01 web1 postfix/smtp[812]: 4B1C12A0F3: to=<a@example.net>, ..., status=sent (250 ok)
    2026-11-21T11:00:01.123456+00:00 web1 postfix-hub/smtp[812]: ...
    web1 postfix/submission/smtpd[90]: NOQUEUE: reject: RCPT from ...

Any program whose first part starts with `postfix` counts (custom syslog_name such as
`postfix-hub` or `postfix/submission`); the daemon is the last part (`smtp`, `error`, `qmgr`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

from mailagent.report import DeliverySection

_SYSLOG = re.compile(
    r"^(?:(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" (?P<host>\S+) (?P<prog>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$")
_POSTFIX_PROG = re.compile(r"^postfix[^/\s]*(?:/[^/\s]+)+$")
_STATUS = re.compile(r"\bstatus=(sent|deferred|bounced|expired)\b")
_RELAY = re.compile(r"\brelay=([^,\s]+)")
_REJECT = re.compile(r"^(?:NOQUEUE|[0-9A-Za-z]+): (?:milter-)?reject:")
# The client's TLS summary; "reused" when a cached connection (tlsproxy) carries the next message.
TLS_SUMMARY = re.compile(r"^(?P<trust>Trusted|Verified|Untrusted|Anonymous) TLS connection "
                         r"(?:established|reused) to (?P<peer>\S+?):? (?P<detail>.*)$")
_CLIENTS = frozenset({"smtp", "lmtp"})
TLS_MEMORY = 4096


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One Postfix log message: the daemon (last part of the program name), pid, text."""

    program: str
    pid: str
    message: str

    @property
    def daemon(self) -> str:
        return self.program.rpartition("/")[2]


def parse_syslog_line(line: str) -> LogRecord | None:
    """A syslog line (BSD or RFC 3339 stamp) to a record; None when it is not from Postfix."""
    match = _SYSLOG.match(line.rstrip("\r\n"))
    if not match or not _POSTFIX_PROG.match(match["prog"]):
        return None
    return LogRecord(match["prog"], match["pid"] or "", match["msg"])


def parse_journal_entry(entry: dict) -> LogRecord | None:
    """A `journalctl -o json` object to a record; None when it is not from Postfix."""
    prog, message = entry.get("SYSLOG_IDENTIFIER"), entry.get("MESSAGE")
    if isinstance(message, list):  # journald sends non-UTF-8 text as a byte array
        message = bytes(message).decode(errors="replace")
    if not isinstance(prog, str) or not isinstance(message, str) or not _POSTFIX_PROG.match(prog):
        return None
    return LogRecord(prog, str(entry.get("SYSLOG_PID") or entry.get("_PID") or ""), message)


@dataclass
class DeliveryCounter:
    """Running delivery counts; remembers which client connections used TLS across reads."""

    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    expired: int = 0
    rejected: int = 0
    sasl_auth_failures: int = 0
    tls_deliveries: int = 0
    plaintext_deliveries: int = 0
    tls_sessions: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def add(self, record: LogRecord) -> None:
        """Count one record."""
        msg, daemon = record.message, record.daemon
        if daemon in _CLIENTS and (tls := TLS_SUMMARY.match(msg)):
            self._remember_tls(record.pid, tls["peer"])
        elif status := _STATUS.search(msg):
            self._status(record, status.group(1))
        elif _REJECT.match(msg):
            self.rejected += 1

    def _status(self, record: LogRecord, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)
        if "SASL authentication failed" in record.message and record.daemon != "smtpd":
            self.sasl_auth_failures += 1
        relay = _RELAY.search(record.message)
        if status == "sent" and record.daemon in _CLIENTS and relay and relay.group(1) != "none":
            if (record.pid, relay.group(1)) in self.tls_sessions:
                self.tls_deliveries += 1
            else:
                self.plaintext_deliveries += 1

    def _remember_tls(self, pid: str, peer: str) -> None:
        self.tls_sessions[(pid, peer)] = True
        self.tls_sessions.move_to_end((pid, peer))
        while len(self.tls_sessions) > TLS_MEMORY:
            self.tls_sessions.popitem(last=False)

    def section(self) -> DeliverySection:
        """The counts as the report's delivery section."""
        return DeliverySection(**{name: getattr(self, name) for name in DeliverySection.model_fields})

    def reset(self) -> None:
        """Zero the counts (after a report took them); TLS memory is kept."""
        for name in DeliverySection.model_fields:
            setattr(self, name, 0)
