"""Per-host Ed25519 identity: how an agent proves which host a report comes from.

Scheme (version tag ``mailagent-v1``): each host makes its own key pair at install time
(``mailagent keygen``); the deploy registers the public half with the collector. Every POST
carries four headers::

    X-Mailagent-Host       host name (the key the collector looks the public key up by)
    X-Mailagent-Timestamp  unix seconds when the request was signed
    X-Mailagent-Nonce      32 hex chars, random per request
    X-Mailagent-Signature  base64 Ed25519 signature over
                           b"mailagent-v1\\n{host}\\n{timestamp}\\n{nonce}\\n" + sha256(body).hexdigest()

Spooled reports are re-signed when they are finally sent (fresh timestamp and nonce, same
report_id), so a report that waited an hour is not refused as stale.

Threat model.
  Stops: a host (or anyone on the network path) sending reports as another host — it lacks
  that host's private key; tampering with a body or the headers in transit — the signature
  covers host, time, nonce and the body's digest; replay — the collector refuses timestamps
  outside ``max_skew`` and keeps a nonce cache for that window, and stores a report once per
  report_id so an honest resend is idempotent.
  Does not stop: a root-compromised host lying about itself (it holds its own key; its figures
  are only as true as the host); reading reports in transit (that is TLS's job — use https
  collector URLs); a stolen key being used until the collector's registration is replaced;
  a collector compromise. Clock skew beyond ``max_skew`` makes honest reports fail as Stale.

Errors::

    SigningError
    ├── UnknownHost    no public key registered for the host / headers missing
    ├── BadSignature   signature, key or header format does not verify
    └── Stale          timestamp outside the allowed skew

One check (`verify_request`) for every verifier: the agent's tests and the lab's stub give the
registered key as text (checked with OpenSSL through cryptography); the collector gives a key it
parsed once and checks with libsodium (collector/keycache.py). `check_form` and `check_time` are
its first steps, which the collector also runs alone before a request is queued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mailagent.fileio import write_atomic
from mailagent.names import is_host_name

SCHEME = b"mailagent-v1"
H_HOST = "X-Mailagent-Host"
H_TIMESTAMP = "X-Mailagent-Timestamp"
H_NONCE = "X-Mailagent-Nonce"
H_SIGNATURE = "X-Mailagent-Signature"
SIGNED_HEADERS = (H_HOST, H_TIMESTAMP, H_NONCE, H_SIGNATURE)
# The forms of the signed headers (ASCII only; `str.isdigit` would take '²' or '٣').
# Unix seconds are 1 to 12 digits: int() refuses over 4,300, and twelve reach the year 33658.
NONCE_RE = re.compile(r"[0-9a-f]{32}")
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
SIGNATURE_RE = re.compile(r"[A-Za-z0-9+/]{86}==")  # 64 bytes in base64, as sign_request writes them


class SigningError(Exception):
    """A request's identity could not be established."""


class UnknownHost(SigningError):
    """The host is not registered, or the identity headers are missing."""


class BadSignature(SigningError):
    """The signature does not verify, or a header or key is malformed."""


class Stale(SigningError):
    """The request's timestamp is outside the allowed clock skew."""


class Verifier(Protocol):
    """A registered public key, parsed by whichever library checks it."""

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Whether `signature` is this key's over `message`; BadSignature for a malformed key."""


def generate_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Make a new key and write it to `path` as PEM (PKCS8), mode 0600, atomically.

    The temporary file is created 0600 before any key byte is written, so the key is never
    readable by others, and a crash leaves either no key or a whole one.
    """
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(path, pem, 0o600)
    return key


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key written by `generate_key`."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BadSignature(f"{path}: not an Ed25519 private key")
    return key


def public_key_text(priv: Ed25519PrivateKey) -> str:
    """The public half as base64 of its raw 32 bytes (what the collector registers)."""
    return base64.b64encode(priv.public_key().public_bytes_raw()).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Decode `public_key_text` output; raises BadSignature when it is not a valid key."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature(f"malformed public key: {exc}") from None


class OpenSSLKey:
    """A key given as `public_key_text` output, checked by cryptography (OpenSSL)."""

    def __init__(self, text: str):
        self.key = parse_public_key(text)

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def signed_message(host: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes that are signed (shared by signer and verifier)."""
    head = b"\n".join([SCHEME, host.encode(), timestamp.encode(), nonce.encode()]) + b"\n"
    return head + hashlib.sha256(body).hexdigest().encode()


def sign_request(priv: Ed25519PrivateKey, host: str, body: bytes, now: float | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """Headers that authenticate `body` as sent by `host` at `now` (default: the clock)."""
    if not is_host_name(host):
        raise ValueError(f"invalid host name for signing: {host!r}")
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_hex(16)
    signature = priv.sign(signed_message(host, timestamp, nonce, body))
    return {H_HOST: host, H_TIMESTAMP: timestamp, H_NONCE: nonce,
            H_SIGNATURE: base64.b64encode(signature).decode()}


def _header(headers, name: str) -> str | None:
    """Case-insensitive header lookup that works for plain dicts and HTTP header objects."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_request(public_key: str | Verifier | None, headers, body: bytes, now: float | None = None,
                   max_skew: float = 300) -> None:
    """Check a request's signature headers; return None or raise a SigningError subclass.

    `public_key` is the key registered for the host named in the headers: its text, or a parsed
    Verifier; None when the host is unknown. Replay within the window is the caller's to refuse:
    it keeps the nonces it has seen for `max_skew` seconds.
    """
    host, stamp, nonce, sig = (_header(headers, h) for h in SIGNED_HEADERS)
    if host is None or public_key is None:
        raise UnknownHost(f"unknown host {host!r}" if host else f"missing {H_HOST} header")
    check_form(headers)
    check_time(stamp, time.time() if now is None else now, max_skew)
    key = OpenSSLKey(public_key) if isinstance(public_key, str) else public_key
    if not key.verifies(base64.b64decode(sig), signed_message(host, stamp, nonce, body)):
        raise BadSignature(f"signature does not verify for host {host!r}")


def check_form(headers) -> None:
    """Refuse missing or malformed signing headers: UnknownHost without a host, BadSignature
    otherwise. Needs no key, so the collector runs it before a request is queued."""
    host, stamp, nonce, sig = (_header(headers, h) for h in SIGNED_HEADERS)
    if host is None:
        raise UnknownHost(f"missing {H_HOST} header")
    if stamp is None or nonce is None or sig is None:
        raise BadSignature("missing signature headers")
    if not (TIMESTAMP_RE.fullmatch(stamp) and NONCE_RE.fullmatch(nonce) and is_host_name(host)
            and SIGNATURE_RE.fullmatch(sig)):
        raise BadSignature("malformed signature headers")


def check_time(stamp: str, now: float, max_skew: float) -> None:
    """Stale when the (well-formed) timestamp is more than `max_skew` from `now`."""
    if abs(now - int(stamp)) > max_skew:
        raise Stale(f"timestamp {stamp} is {int(now - int(stamp))} s from now (max {max_skew})")
