"""Host keys for ingest: parsed once per process, signatures checked by libsodium.

Checking the signature is the largest part of storing a report. libsodium (PyNaCl) verifies
an Ed25519 signature in about 60 % of the time OpenSSL takes here, and releases the GIL
while it does, so the event loop keeps parsing requests meanwhile. It is stricter, never
laxer: it also refuses non-canonical and small-order keys and signatures, which no honest
agent produces.

The cache is only a hint for checking signatures before the storing transaction. Ingest reads
each host's registered key again inside that transaction and verifies anew with it whenever
it differs from the key used before (a re-registration by this or any other replica), so a
stale entry can neither let a forged report in nor refuse an honest one.

`verify` answers as `signing.verify_request` does (same checks, same order, same exceptions;
a test holds the two to that), only stricter on the header forms: the timestamp must be 1 to 12
ASCII digits, and `check_form` tells a malformed request apart before anything is queued.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from mailagent import signing

# Unix seconds in ASCII digits: `str.isdigit` also takes "٣" and "²", and int() refuses over
# 4,300 digits; twelve reach the year 33658.
SIGNATURE_RE = re.compile(r"[A-Za-z0-9+/]{86}==")  # 64 bytes in base64, as signing writes them


@dataclass(frozen=True)
class HostKey:
    """A registered key as stored (`text`) and parsed (`key`; None when malformed)."""

    text: str
    key: VerifyKey | None

    @classmethod
    def parse(cls, text: str) -> "HostKey":
        try:
            raw = base64.b64decode(text.strip(), validate=True)
            return cls(text, VerifyKey(raw) if len(raw) == 32 else None)
        except (binascii.Error, ValueError, CryptoError):
            return cls(text, None)


class KeyCache:
    """host name -> HostKey, filled from the rows each storing transaction reads."""

    def __init__(self, limit: int = 200_000):
        self._keys: dict[str, HostKey] = {}
        self._limit = limit

    def get(self, host: str) -> HostKey | None:
        return self._keys.get(host)

    def remember(self, host: str, text: str) -> HostKey:
        """The parsed key for `text`, reusing the cached one when the text is unchanged."""
        known = self._keys.get(host)
        if known is not None and known.text == text:
            return known
        if len(self._keys) >= self._limit:
            self._keys.clear()  # a fleet this size refills it within one reporting interval
        self._keys[host] = HostKey.parse(text)
        return self._keys[host]


def verify(key: HostKey | None, headers: dict[str, str], body: bytes, now: float,
           max_skew: float) -> None:
    """`signing.verify_request` with a parsed key; `headers` under their canonical names."""
    host, stamp, nonce, sig = (headers.get(h) for h in signing.SIGNED_HEADERS)
    if host is None or key is None:
        raise signing.UnknownHost(f"unknown host {host!r}" if host
                                  else f"missing {signing.H_HOST} header")
    check_form(headers)
    check_time(stamp, now, max_skew)
    if key.key is None:
        raise signing.BadSignature("malformed public key")
    try:
        signature = base64.b64decode(sig, validate=True)
        key.key.verify(signing.signed_message(host, stamp, nonce, body), signature)
    except (binascii.Error, ValueError, CryptoError):
        raise signing.BadSignature(f"signature does not verify for host {host!r}") from None


def check_form(headers: dict[str, str]) -> None:
    """Refuse missing or malformed signing headers (`headers` under their canonical names):
    UnknownHost without a host, BadSignature otherwise. Needs no key, so it runs before a
    request is queued."""
    host, stamp, nonce, sig = (headers.get(h) for h in signing.SIGNED_HEADERS)
    if host is None:
        raise signing.UnknownHost(f"missing {signing.H_HOST} header")
    if stamp is None or nonce is None or sig is None:
        raise signing.BadSignature("missing signature headers")
    if not (signing.TIMESTAMP_RE.fullmatch(stamp) and signing.NONCE_RE.fullmatch(nonce)
            and signing.HOST_RE.fullmatch(host) and SIGNATURE_RE.fullmatch(sig)):
        raise signing.BadSignature("malformed signature headers")


def check_time(stamp: str, now: float, max_skew: float) -> None:
    """Stale when the (well-formed) timestamp is more than `max_skew` from `now`."""
    if abs(now - int(stamp)) > max_skew:
        raise signing.Stale(f"timestamp {stamp} is {int(now - int(stamp))} s from now "
                            f"(max {max_skew})")
