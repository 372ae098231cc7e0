"""The shapes of the sink's records: pure functions from what a connection saw to a JSON-able dict.

mail.jsonl     {"id", "received_at", "mail_from", "rcpt_tos", "headers": {"message_id", "subject",
               "from", "to", "date", "received"}, "size", "tls", "tls_version", "tls_cipher",
               "auth_user", "auth_mechanism", "port", "kind", "peer", "peer_port", "helo"}
auth.jsonl     {"at", "user", "mechanism", "success", "tls", "port", "peer", "peer_port", ["error"]}
connections.jsonl {"opened_at", "closed_at", "kind", "port", "peer", "peer_port", "tls",
               "tls_version", "tls_cipher", "starttls", "auth_attempts", "auth_user", "messages", "error"}

`kind` is "starttls" or "implicit" (SMTPS). Passwords never appear in any record.
"""

from __future__ import annotations

import datetime as dt
import email.parser

HEADERS = ("Message-ID", "Subject", "From", "To", "Date")


def now() -> str:
    """UTC time as ISO 8601, what every record carries."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def tls_of(transport) -> dict:
    """{"tls", "tls_version", "tls_cipher"} of a transport (plain ones give tls=False)."""
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    if sslobj is None:
        return {"tls": False, "tls_version": None, "tls_cipher": None}
    return {"tls": True, "tls_version": sslobj.version(), "tls_cipher": sslobj.cipher()[0]}


def header_summary(content: bytes) -> dict:
    """The headers a test or an operator looks at first; Received is its first line only."""
    msg = email.parser.BytesHeaderParser().parsebytes(content)
    found = {name.lower().replace("-", "_"): _header(msg, name) for name in HEADERS}
    received = msg.get_all("Received") or []
    found["received"] = str(received[0]).splitlines()[0].strip() if received else None
    return found


def _header(msg, name: str) -> str | None:
    value = msg.get(name)
    return None if value is None else " ".join(str(value).split())


def connection_record(opened_at: str, kind: str, sockname, peername, tls: dict, error=None, **seen) -> dict:
    """The connections.jsonl line: where, whether TLS completed, what happened, how it ended."""
    rec = {"opened_at": opened_at, "closed_at": now(), "kind": kind, "port": sockname[1],
           "peer": peername[0], "peer_port": peername[1], **tls, "error": _describe(error)}
    return rec | {"starttls": False, "auth_attempts": 0, "auth_user": None, "messages": 0} | seen


def _describe(error: BaseException | None) -> str | None:
    if error is None:
        return None
    cause = error.__cause__ or error  # aiosmtpd wraps handshake failures in TLSSetupException
    return f"{type(cause).__name__}: {cause}"
