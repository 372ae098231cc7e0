"""Who may do what at the collector, and a limit on wrong guesses.

    credential                            may
    registration_token  (Bearer)          add a host that has no key yet (the same key again: 200)
    a host's own key    (signed request)  replace its own key (rotation), mark itself drained,
                                          send its reports
    admin_token         (Bearer)          replace any key, delete hosts, mark any host drained, read
    read_token          (Bearer, or the   the dashboard, /api/v1/hosts, /api/v1/alerts, /metrics,
                        Basic password)   /openapi.json
    nobody                                /healthz; the read side too with public_read = true

A signed request carries the four headers of `mailagent.signing` over its exact body bytes;
the collector checks them against the key registered now and claims the nonce (replays: 409).

Tokens are compared in constant time, every configured one each time. A wrong token costs its
client address one of `auth_failures_per_minute` tries, refilled evenly over a minute (a token
bucket per server process, kept in memory); with none left, any token from that address gets
429 with Retry-After, right or wrong, until one refills. Behind a proxy all clients share its
address, so one guesser there slows everyone behind it: the price of not trusting
X-Forwarded-For.

Refusals::

    Refused          a 4xx answered as {"detail", "error", ...extra} (extra: server_time)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import threading
import time
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from mailagent import signing
from mailagent.collector import keycache, store

REALM = 'Basic realm="mailagent"'
ROLES = {"registration_token": "registration", "admin_token": "admin", "read_token": "read"}


class Refused(Exception):
    """A request answered with `status` and a JSON body naming the `error`."""

    def __init__(self, status: int, error: str, detail: str, headers: dict | None = None,
                 **extra):
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.headers, self.extra = headers or {}, extra

    def body(self) -> dict:
        return {"detail": self.detail, "error": self.error, **self.extra}


class FailureLimiter:
    """Wrong credentials per client address: `per_minute` tries, refilled evenly."""

    def __init__(self, per_minute: int, clock=time.monotonic, max_clients: int = 10_000):
        self._capacity, self._rate = float(per_minute), per_minute / 60.0
        self._clock, self._max = clock, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tries left, at)
        self._lock = threading.Lock()

    def _left(self, address: str, now: float) -> float:
        left, at = self._buckets.get(address, (self._capacity, now))
        return min(self._capacity, left + (now - at) * self._rate)

    def retry_after(self, address: str) -> int:
        """0 when `address` may present a credential now, else whole seconds to wait."""
        with self._lock:
            left = self._left(address, self._clock())
        return 0 if left >= 1 else math.ceil((1 - left) / self._rate)

    def failed(self, address: str) -> None:
        """Take one try from `address`."""
        with self._lock:
            now = self._clock()
            if address not in self._buckets and len(self._buckets) >= self._max:
                self._forget_refilled(now)
            self._buckets[address] = (self._left(address, now) - 1, now)

    def _forget_refilled(self, now: float) -> None:
        full = [a for a in self._buckets if self._left(a, now) >= self._capacity]
        for address in full or list(self._buckets):  # none refilled: a flood, start over
            del self._buckets[address]


def presented_token(authorization: str | None) -> str | None:
    """The token of a Bearer header, or the password of a Basic one ("" when unreadable)."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return None if not authorization else ""


def matching_role(settings, token: str) -> str | None:
    """The role of the configured token equal to `token` (each compared in constant time)."""
    found = None
    for name, secret in settings.tokens().items():
        if hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
            found = ROLES[name]
    return found


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def token_role(request: Request, challenge: str = "Bearer") -> str:
    """The role of the request's token; 401 when missing or wrong, 429 past the limit."""
    collector = request.app.state.collector
    token = presented_token(request.headers.get("authorization"))
    if token is None:
        raise HTTPException(401, "credential required", headers={"WWW-Authenticate": challenge})
    wait = collector.auth_limiter.retry_after(_client(request))
    if wait:
        raise HTTPException(429, "too many wrong credentials from this address",
                            headers={"Retry-After": str(wait)})
    role = matching_role(collector.settings, token)
    if role is None:
        collector.auth_limiter.failed(_client(request))
        collector.counters["auth_failed"] += 1
        raise HTTPException(401, "wrong credential", headers={"WWW-Authenticate": challenge})
    return role


def require_read(request: Request) -> None:
    """FastAPI dependency of every read page: the read or admin token, unless public_read."""
    if request.app.state.collector.settings.public_read:
        return
    if token_role(request, challenge=REALM) not in ("read", "admin"):
        raise HTTPException(403, "this token cannot read; use the read or admin token")


@dataclass
class Grant:
    """What a request proved: a token's role, or "host" with the signature's details."""

    role: str
    host: str | None = None
    nonce: str | None = None
    key_text: str | None = None   # the registered key the signature verified with
    at: float = field(default_factory=time.time)


async def credential(request: Request, body: bytes, host: str) -> Grant:
    """A token's role, or (no Authorization header, signature headers present) proof that
    `host`'s registered key signed `body`."""
    headers = request.headers
    if "authorization" in headers or signing.H_SIGNATURE.lower() not in headers:
        return Grant(token_role(request))
    return await signed_by(request, body, host)


async def signed_by(request: Request, body: bytes, host: str) -> Grant:
    """Check the request is signed by `host`'s registered key; Refused otherwise."""
    collector = request.app.state.collector
    signed = {h: request.headers.get(h.lower()) for h in signing.SIGNED_HEADERS}
    if signed[signing.H_HOST] != host:
        raise Refused(403, "host_mismatch", f"signed as {signed[signing.H_HOST]!r}, "
                      f"but the request is about {host!r}")
    now = time.time()
    text = await asyncio.to_thread(store.public_key, collector.engine, host)
    try:
        signing.verify_request(keycache.HostKey.parse(text) if text else None, signed, body, now=now,
                        max_skew=collector.settings.max_skew_seconds)
    except signing.UnknownHost as exc:
        raise Refused(401, "unknown_host", str(exc)) from None
    except signing.Stale as exc:
        raise Refused(401, "stale", str(exc), server_time=int(now)) from None
    except signing.BadSignature as exc:
        raise Refused(403, "bad_signature", str(exc)) from None
    return Grant("host", host, signed[signing.H_NONCE], text, now)
