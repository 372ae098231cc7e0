"""Send spooled reports to the collector, oldest first, signed at send time, with backoff.

    2xx              accepted (or a duplicate report_id): the file is removed
    400, 413, 422    the collector will never take this report: dropped and counted
    anything else    (401 not registered yet, 409, 5xx, network errors) kept; back off and retry

Backoff doubles from the report interval up to backoff_max_seconds and resets on success.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass

import httpx

from mailagent import signing
from mailagent.agent.spool import Spool

PERMANENT = frozenset({400, 413, 422})


@dataclass
class Backoff:
    """When the next send may be tried."""

    base: float
    cap: float
    failures: int = 0
    next_at: float = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def failed(self, now: float) -> float:
        delay = min(self.cap, self.base * 2 ** self.failures)
        self.failures += 1
        self.next_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.next_at = 0, 0.0


@dataclass
class FlushResult:
    sent: int = 0
    dropped: int = 0
    error: str | None = None
    last_report_id: str | None = None


class Reporter:
    def __init__(self, url: str, host: str, key, spool: Spool, backoff: Backoff,
                 timeout: float = 10, verify=True, transport: httpx.BaseTransport | None = None):
        self.endpoint = f"{url.rstrip('/')}/api/v1/reports"
        self.host, self.key, self.spool, self.backoff = host, key, spool, backoff
        self.client = httpx.Client(timeout=timeout, verify=_tls_for(url, verify), transport=transport)

    def close(self) -> None:
        self.client.close()

    def flush(self, now: float, should_stop=lambda: False) -> FlushResult:
        """Send what the spool holds until it is empty, a send fails, or `should_stop()`."""
        result = FlushResult()
        if not self.backoff.ready(now):
            return result
        for path in self.spool.pending():
            if should_stop():
                break
            body = path.read_bytes()
            status, error = self.post(body, now)
            if status is not None and 200 <= status < 300:
                self.spool.remove(path)
                result.sent += 1
                result.last_report_id = _report_id(body)
            elif status in PERMANENT:
                self.spool.drop(path)
                result.dropped += 1
                result.error = error
            else:
                result.error = error
                self.backoff.failed(now)
                return result
        self.backoff.succeeded()
        return result

    def post(self, body: bytes, now: float) -> tuple[int | None, str | None]:
        """One signed POST; (status, error text) or (None, error) on a network failure."""
        headers = signing.sign_request(self.key, self.host, body, now=now)
        headers["Content-Type"] = "application/json"
        try:
            response = self.client.post(self.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}: {response.text[:300]}"


def _tls_for(url: str, verify):
    """What httpx verifies the collector with. A plain http:// collector (loopback) gets a
    context that trusts no CA at all, rather than httpx's default that parses the whole certifi
    bundle (about 1 MB kept resident) for connections that never use TLS."""
    if verify is True and url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return verify


def _report_id(body: bytes) -> str | None:
    try:
        return json.loads(body).get("report_id")
    except (ValueError, AttributeError):
        return None
