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

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mailagent.fileio import write_atomic

SCHEME = b"mailagent-v1"
H_HOST = "X-Mailagent-Host"
H_TIMESTAMP = "X-Mailagent-Timestamp"
H_NONCE = "X-Mailagent-Nonce"
H_SIGNATURE = "X-Mailagent-Signature"
SIGNED_HEADERS = (H_HOST, H_TIMESTAMP, H_NONCE, H_SIGNATURE)
# The forms of the signed headers (ASCII only; `str.isdigit` would take '²' or '٣').
NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


class SigningError(Exception):
    """A request's identity could not be established."""


class UnknownHost(SigningError):
    """The host is not registered, or the identity headers are missing."""


class BadSignature(SigningError):
    """The signature does not verify, or a header or key is malformed."""


class Stale(SigningError):
    """The request's timestamp is outside the allowed clock skew."""


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


def signed_message(host: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes that are signed (shared by signer and verifier)."""
    head = b"\n".join([SCHEME, host.encode(), timestamp.encode(), nonce.encode()]) + b"\n"
    return head + hashlib.sha256(body).hexdigest().encode()


def sign_request(priv: Ed25519PrivateKey, host: str, body: bytes, now: float | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """Headers that authenticate `body` as sent by `host` at `now` (default: the clock)."""
    if not HOST_RE.match(host):
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


def verify_request(public_key_text: str | None, headers, body: bytes, now: float | None = None,
                   max_skew: float = 300) -> None:
    """Check a request's signature headers; return None or raise a SigningError subclass.

    `public_key_text` is the key registered for the host named in the headers (None when the
    host is unknown). Replay within the window is the caller's to refuse: it keeps the nonces
    it has seen for `max_skew` seconds.
    """
    host, stamp, nonce, sig = (_header(headers, h) for h in SIGNED_HEADERS)
    if host is None or public_key_text is None:
        raise UnknownHost(f"unknown host {host!r}" if host else f"missing {H_HOST} header")
    if stamp is None or nonce is None or sig is None:
        raise BadSignature("missing signature headers")
    if not (TIMESTAMP_RE.fullmatch(stamp) and NONCE_RE.fullmatch(nonce) and HOST_RE.fullmatch(host)):
        raise BadSignature("malformed signature headers")
    now = time.time() if now is None else now
    if abs(now - int(stamp)) > max_skew:
        raise Stale(f"timestamp {stamp} is {int(now - int(stamp))} s from now (max {max_skew})")
    try:
        signature = base64.b64decode(sig, validate=True)
        parse_public_key(public_key_text).verify(signature, signed_message(host, stamp, nonce, body))
    except (binascii.Error, InvalidSignature):
        raise BadSignature(f"signature does not verify for host {host!r}") from None

