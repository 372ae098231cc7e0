"""DKIM key records (RFC 6376 3.6.1): what a selector publishes and whether it is usable.

    parse("v=DKIM1; k=rsa; p=MIIBIjANBg...") == Key(kind="rsa", bits=2048, revoked=False, problem=None)
    parse("v=DKIM1; p=")                      == Key(kind="rsa", bits=None, revoked=True, problem=None)
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

RSA_FAIL_BELOW = 1024   # RFC 8301: verifiers must not accept smaller keys
RSA_WARN_BELOW = 2048   # RFC 8301 recommends 2048; 1024 still verifies
ED25519_BYTES = 32


@dataclass(frozen=True)
class Key:
    kind: str                 # "rsa" or "ed25519" (k=, default rsa)
    bits: int | None = None
    revoked: bool = False     # p= is empty
    problem: str | None = None


def tags(text: str) -> dict[str, str]:
    """DKIM/DMARC tag-list: "v=DKIM1; p=abc" -> {"v": "DKIM1", "p": "abc"} (names lower-cased)."""
    found = {}
    for part in text.split(";"):
        name, separator, value = part.partition("=")
        if separator:
            found.setdefault(name.strip().lower(), "".join(value.split()))
    return found


def parse(text: str) -> Key:
    values = tags(text)
    kind = values.get("k", "rsa").lower()
    if "v" in values and values["v"] != "DKIM1":
        return Key(kind, problem=f"v={values['v']} (must be DKIM1)")
    if "p" not in values:
        return Key(kind, problem="no p= tag (not a DKIM key record)")
    if not values["p"]:
        return Key(kind, revoked=True)
    try:
        raw = base64.b64decode(values["p"], validate=True)
    except (binascii.Error, ValueError):
        return Key(kind, problem="p= is not base64")
    if kind == "ed25519":
        ok = len(raw) == ED25519_BYTES
        problem = None if ok else f"{len(raw)}-byte ed25519 key (must be 32)"
        return Key(kind, 256 if ok else None, problem=problem)
    if kind != "rsa":
        return Key(kind, problem=f"k={kind} is not a key type verifiers know (rsa, ed25519)")
    return _rsa(raw)


def _rsa(raw: bytes) -> Key:
    try:
        key = load_der_public_key(raw)
    except ValueError:
        return Key("rsa", problem="p= is not an RSA public key")
    if not isinstance(key, rsa.RSAPublicKey):
        return Key("rsa", problem="p= holds a key that is not RSA while k=rsa")
    return Key("rsa", key.key_size)
