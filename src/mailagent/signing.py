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
report_id), so a report that waited an hour is not refused as stale. The resident agent signs
with `load_signer`: the same key, held by the libcrypto Python links anyway, not `cryptography`.

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
import ctypes
import hashlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.fileio import write_atomic

if TYPE_CHECKING:  # imported where used: the resident agent signs without `cryptography`
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SCHEME = b"mailagent-v1"
H_HOST = "X-Mailagent-Host"
H_TIMESTAMP = "X-Mailagent-Timestamp"
H_NONCE = "X-Mailagent-Nonce"
H_SIGNATURE = "X-Mailagent-Signature"
SIGNED_HEADERS = (H_HOST, H_TIMESTAMP, H_NONCE, H_SIGNATURE)
_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")


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
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(path, pem, 0o600)
    return key


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key written by `generate_key`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BadSignature(f"{path}: not an Ed25519 private key")
    return key


def load_signer(path: str | os.PathLike) -> LibcryptoKey | Ed25519PrivateKey:
    """The key the resident agent signs with: `generate_key`'s key held by OpenSSL's libcrypto.

    Python's hashlib and ssl have loaded libcrypto already, so signing through it spares the
    agent the `cryptography` package, about 8 MB of resident memory kept between reports.
    Ed25519 is deterministic: the signatures are the same bytes either way. Any other key form,
    or a libcrypto without Ed25519 (OpenSSL < 1.1.1), gets `load_private_key`'s key instead.
    """
    seed = _pkcs8_ed25519_seed(Path(path).read_bytes())
    lib = _libcrypto() if seed is not None else None
    return LibcryptoKey(lib, seed) if lib is not None else load_private_key(path)


def public_key_text(priv: LibcryptoKey | Ed25519PrivateKey) -> str:
    """The public half as base64 of its raw 32 bytes (what the collector registers)."""
    raw = priv.public_bytes_raw() if isinstance(priv, LibcryptoKey) else \
        priv.public_key().public_bytes_raw()
    return base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """Decode `public_key_text` output; raises BadSignature when it is not a valid key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature(f"malformed public key: {exc}") from None


def signed_message(host: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes that are signed (shared by signer and verifier)."""
    head = b"\n".join([SCHEME, host.encode(), timestamp.encode(), nonce.encode()]) + b"\n"
    return head + hashlib.sha256(body).hexdigest().encode()


def sign_request(priv: LibcryptoKey | Ed25519PrivateKey, host: str, body: bytes, now: float | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """Headers that authenticate `body` as sent by `host` at `now` (default: the clock)."""
    if not _HOST_RE.match(host):
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
    if not stamp.isdigit() or not _NONCE_RE.match(nonce) or not _HOST_RE.match(host):
        raise BadSignature("malformed signature headers")
    now = time.time() if now is None else now
    if abs(now - int(stamp)) > max_skew:
        raise Stale(f"timestamp {stamp} is {int(now - int(stamp))} s from now (max {max_skew})")
    from cryptography.exceptions import InvalidSignature
    try:
        signature = base64.b64decode(sig, validate=True)
        parse_public_key(public_key_text).verify(signature, signed_message(host, stamp, nonce, body))
    except (binascii.Error, InvalidSignature):
        raise BadSignature(f"signature does not verify for host {host!r}") from None


# An unencrypted Ed25519 PKCS#8 key (RFC 8410, section 7) is this DER prefix, then the 32-byte
# seed: exactly what `generate_key` writes.
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_HEAD, _PEM_TAIL = b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----"
_NID_ED25519 = 1087  # EVP_PKEY_ED25519 in OpenSSL's obj_mac.h
_P, _SIZE, _SIZE_P, _INT, _BYTES = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t),
                                    ctypes.c_int, ctypes.c_char_p)
_LIBCRYPTO_CALLS = {  # name: (result, arguments), as declared in OpenSSL's evp.h
    "EVP_PKEY_new_raw_private_key": (_P, [_INT, _P, _BYTES, _SIZE]),
    "EVP_PKEY_get_raw_public_key": (_INT, [_P, _BYTES, _SIZE_P]),
    "EVP_PKEY_free": (None, [_P]),
    "EVP_MD_CTX_new": (_P, []),
    "EVP_MD_CTX_free": (None, [_P]),
    "EVP_DigestSignInit": (_INT, [_P, _P, _P, _P, _P]),
    "EVP_DigestSign": (_INT, [_P, _BYTES, _SIZE_P, _BYTES, _SIZE]),
}


def _pkcs8_ed25519_seed(pem: bytes) -> bytes | None:
    """The seed of a PEM "PRIVATE KEY" in `generate_key`'s form; None for anything else."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0] != _PEM_HEAD or lines[-1] != _PEM_TAIL:
        return None
    try:
        der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except binascii.Error:
        return None
    ok = len(der) == len(_PKCS8_ED25519) + 32 and der.startswith(_PKCS8_ED25519)
    return der[len(_PKCS8_ED25519):] if ok else None


def _libcrypto() -> ctypes.CDLL | None:
    """The libcrypto Python's own _hashlib links, its Ed25519 calls typed; None if unusable."""
    try:
        import _hashlib
        # dlsym on a library's handle also searches what it links: libcrypto, already loaded.
        lib = ctypes.CDLL(_hashlib.__file__)
        for name, (restype, argtypes) in _LIBCRYPTO_CALLS.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
    except (ImportError, AttributeError, OSError):  # no such library or symbol: use cryptography
        return None
    return lib


class LibcryptoKey:
    """An Ed25519 private key inside libcrypto; `sign` and the public half, as `cryptography` has."""

    def __init__(self, lib: ctypes.CDLL, seed: bytes):
        self._lib = lib
        self._pkey = lib.EVP_PKEY_new_raw_private_key(_NID_ED25519, None, seed, len(seed))
        if not self._pkey:
            raise BadSignature("libcrypto refused the Ed25519 key")

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `data`."""
        lib, ctx = self._lib, self._lib.EVP_MD_CTX_new()
        signature, size = ctypes.create_string_buffer(64), ctypes.c_size_t(64)
        try:
            ok = bool(ctx) and lib.EVP_DigestSignInit(ctx, None, None, None, self._pkey) == 1 and \
                lib.EVP_DigestSign(ctx, signature, ctypes.byref(size), data, len(data)) == 1
        finally:
            lib.EVP_MD_CTX_free(ctx)
        if not ok or size.value != 64:
            raise SigningError("libcrypto could not sign with the Ed25519 key")
        return signature.raw

    def public_bytes_raw(self) -> bytes:
        """The public key's raw 32 bytes."""
        raw, size = ctypes.create_string_buffer(32), ctypes.c_size_t(32)
        if self._lib.EVP_PKEY_get_raw_public_key(self._pkey, raw, ctypes.byref(size)) != 1:
            raise SigningError("libcrypto could not give the Ed25519 public key")
        return raw.raw[:size.value]

    def __del__(self):
        if getattr(self, "_pkey", None):
            self._lib.EVP_PKEY_free(self._pkey)
            self._pkey = None
