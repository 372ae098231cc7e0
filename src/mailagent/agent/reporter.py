"""Send spooled reports to the collector, oldest first, each signed just before it is sent, with backoff.

    2xx              accepted (or a duplicate report_id): the file is removed
    400, 413, 422    the collector will never take this report: dropped and counted
    422 future       dated ahead of the collector's clock (made while ours was ahead): kept,
                     and the flush goes on with the next; it is taken once its time has come
    401 stale        our clock is off: the offset is kept (`clock`), the report kept
    anything else    (401 not registered yet, 409, 5xx, network errors) kept; back off and retry

Reports that could not be spooled (a full disk) are passed in as `unspooled` bodies and sent
after the spooled ones, from memory. Each request is signed with the clock read when it is
sent, so a long backlog never goes stale partway. Backoff doubles from the report interval up
to backoff_max_seconds and resets on success.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass

import httpx

from mailagent import signing
from mailagent.agent import clock as skew
from mailagent.agent.spool import Spool

PERMANENT = frozenset({400, 413, 422})
log = logging.getLogger("mailagent.agent")


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
                 timeout: float = 10, verify=True, transport: httpx.BaseTransport | None = None,
                 clock=time.time):
        self.endpoint = f"{url.rstrip('/')}/api/v1/reports"
        self.host, self.key, self.spool, self.backoff = host, key, spool, backoff
        self.clock, self.skew = clock, skew.SkewWatch()
        self.client = httpx.Client(timeout=timeout, verify=_tls_for(url, verify), transport=transport)

    def close(self) -> None:
        self.client.close()

    def flush(self, now: float, should_stop=lambda: False,
              unspooled: list[bytes] | None = None) -> FlushResult:
        """Send the spool, then `unspooled` (sent or dropped bodies are taken out of it), until
        all went, a send fails, or `should_stop()`."""
        result = FlushResult()
        if not self.backoff.ready(now):
            return result
        for path in self.spool.pending():
            if should_stop() or not self._deliver(_read(path), result, now,
                                                  lambda: self.spool.remove(path),
                                                  lambda: self.spool.drop(path)):
                return result
        for body in list(unspooled or ()):
            if should_stop() or not self._deliver(body, result, now, lambda: unspooled.remove(body),
                                                  lambda: unspooled.remove(body)):
                return result
        self.backoff.succeeded()
        return result

    def _deliver(self, body: bytes | None, result: FlushResult, now: float, sent, dropped) -> bool:
        """POST one body and settle it; False when the flush must stop (kept, backing off)."""
        if body is None:  # removed meanwhile
            return True
        status, error, kind = self._post(body, self.clock())
        if status == 422 and kind == "future":
            result.error = error
        elif status is not None and 200 <= status < 300:
            sent()
            result.sent += 1
            result.last_report_id = _report_id(body)
        elif status in PERMANENT:
            dropped()
            result.dropped += 1
            result.error = error
        else:
            result.error = error
            self.backoff.failed(now)
            return False
        return True

    def post(self, body: bytes, now: float | None = None) -> tuple[int | None, str | None]:
        """One POST signed now (or at `now`); (status, error text) or (None, error) on a network
        failure."""
        status, error, _ = self._post(body, self.clock() if now is None else now)
        return status, error

    def _post(self, body: bytes, signed_at: float) -> tuple[int | None, str | None, str | None]:
        """(status, error text, the collector's error name); a stale refusal records the clock
        offset, an acceptance clears it."""
        headers = signing.sign_request(self.key, self.host, body, now=signed_at)
        headers["Content-Type"] = "application/json"
        try:
            response = self.client.post(self.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500], None
        if 200 <= response.status_code < 300:
            self._note_clock(None)
            return response.status_code, None, None
        kind = skew.error_name(response)
        if kind == "stale" and response.status_code == 401 and (theirs := skew.server_time(response)):
            self._note_clock(signed_at - theirs)
        return response.status_code, f"HTTP {response.status_code}: {response.text[:300]}", kind

    def _note_clock(self, offset: float | None) -> None:
        if line := self.skew.observe(offset):
            (log.info if offset is None else log.warning)("%s", line)


def _tls_for(url: str, verify):
    """What httpx verifies the collector with. A plain http:// collector (loopback) gets a
    context that trusts no CA at all, rather than httpx's default that parses the whole certifi
    bundle (about 1 MB kept resident) for connections that never use TLS."""
    if verify is True and url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return verify


def _read(path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _report_id(body: bytes) -> str | None:
    try:
        return json.loads(body).get("report_id")
    except (ValueError, AttributeError):
        return None
