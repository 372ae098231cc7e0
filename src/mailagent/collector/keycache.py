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

A HostKey is a `signing.Verifier`: the collector passes it to `signing.verify_request`, the one
signature check (a test holds its answers to those the OpenSSL path gives for the same requests).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from mailagent import signing

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

    def verifies(self, signature: bytes, message: bytes) -> bool:
        if self.key is None:
            raise signing.BadSignature("malformed public key")
        try:
            self.key.verify(message, signature)
        except (ValueError, CryptoError):
            return False
        return True


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
