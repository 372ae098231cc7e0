"""Signing: real keys, real signatures; each way a request can be forged or replayed."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailagent import signing
from mailagent.signing import BadSignature, Stale, UnknownHost

NOW = 1_800_000_000
BODY = b'{"host": "web1"}'


@pytest.fixture()
def key(tmp_path):
    return signing.generate_key(tmp_path / "agent.key")


def test_generate_key_is_private_and_loadable(tmp_path):
    path = tmp_path / "sub" / "agent.key"
    key = signing.generate_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signing.public_key_text(signing.load_private_key(path)) == signing.public_key_text(key)
    assert [p.name for p in path.parent.iterdir()] == ["agent.key"]  # no temp file left


def test_loaded_key_signs_the_same_bytes_as_the_generated_one(key, tmp_path):
    loaded = signing.load_private_key(tmp_path / "agent.key")
    for message in (b"", b"mailagent-v1\nweb1\n", os.urandom(70_000)):
        assert loaded.sign(message) == key.sign(message)  # Ed25519 is deterministic


def test_a_key_of_another_type_is_refused(tmp_path):
    path = tmp_path / "ec.key"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(BadSignature, match="not an Ed25519 private key"):
        signing.load_private_key(path)


def test_public_key_text_is_base64_of_32_bytes(key):
    import base64
    assert len(base64.b64decode(signing.public_key_text(key))) == 32


def test_headers_have_the_documented_shape(key):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    assert headers["X-Mailagent-Host"] == "web1"
    assert headers["X-Mailagent-Timestamp"] == str(NOW)
    assert len(headers["X-Mailagent-Nonce"]) == 32
    int(headers["X-Mailagent-Nonce"], 16)
    assert signing.sign_request(key, "web1", BODY, now=NOW)["X-Mailagent-Nonce"] != \
        headers["X-Mailagent-Nonce"]


def test_roundtrip_verifies(key):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    assert signing.verify_request(signing.public_key_text(key), headers, BODY, now=NOW + 10) is None


def test_header_names_are_case_insensitive(key):
    headers = {k.lower(): v for k, v in signing.sign_request(key, "web1", BODY, now=NOW).items()}
    signing.verify_request(signing.public_key_text(key), headers, BODY, now=NOW)


def test_signature_matches_the_documented_message(key):
    import base64
    import hashlib
    headers = signing.sign_request(key, "web1", BODY, now=NOW, nonce="ab" * 16)
    message = b"mailagent-v1\nweb1\n%d\n%s\n" % (NOW, b"ab" * 16) + hashlib.sha256(BODY).hexdigest().encode()
    key.public_key().verify(base64.b64decode(headers["X-Mailagent-Signature"]), message)


def test_tampered_body_is_refused(key):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    with pytest.raises(BadSignature):
        signing.verify_request(signing.public_key_text(key), headers, BODY + b" ", now=NOW)


@pytest.mark.parametrize("field,value", [("X-Mailagent-Timestamp", str(NOW + 1)),
                                         ("X-Mailagent-Nonce", "cd" * 16),
                                         ("X-Mailagent-Host", "web2")])
def test_tampered_header_is_refused(key, field, value):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    headers[field] = value
    with pytest.raises(BadSignature):
        signing.verify_request(signing.public_key_text(key), headers, BODY, now=NOW)


def test_another_hosts_key_cannot_report_as_this_host(key, tmp_path):
    other = signing.generate_key(tmp_path / "other.key")
    forged = signing.sign_request(other, "web1", BODY, now=NOW)
    with pytest.raises(BadSignature):
        signing.verify_request(signing.public_key_text(key), forged, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, 10_000])
def test_old_or_future_timestamp_is_stale(key, offset):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    with pytest.raises(Stale):
        signing.verify_request(signing.public_key_text(key), headers, BODY, now=NOW + offset)


def test_unknown_host_and_missing_headers(key):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    with pytest.raises(UnknownHost):
        signing.verify_request(None, headers, BODY, now=NOW)
    with pytest.raises(UnknownHost):
        signing.verify_request(signing.public_key_text(key), {}, BODY, now=NOW)
    del headers["X-Mailagent-Signature"]
    with pytest.raises(BadSignature):
        signing.verify_request(signing.public_key_text(key), headers, BODY, now=NOW)


@pytest.mark.parametrize("field,value", [("X-Mailagent-Signature", "!!notbase64"),
                                         ("X-Mailagent-Nonce", "short"),
                                         ("X-Mailagent-Timestamp", "12.5")])
def test_malformed_headers_are_bad_signatures(key, field, value):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    headers[field] = value
    with pytest.raises(BadSignature):
        signing.verify_request(signing.public_key_text(key), headers, BODY, now=NOW)


def test_malformed_registered_key_is_bad_signature(key):
    headers = signing.sign_request(key, "web1", BODY, now=NOW)
    with pytest.raises(BadSignature):
        signing.verify_request("AAAA", headers, BODY, now=NOW)


def test_resigning_keeps_body_and_changes_nonce(key):
    first = signing.sign_request(key, "web1", BODY, now=NOW)
    later = signing.sign_request(key, "web1", BODY, now=NOW + 3600)
    pub = signing.public_key_text(key)
    signing.verify_request(pub, later, BODY, now=NOW + 3600)
    with pytest.raises(Stale):
        signing.verify_request(pub, first, BODY, now=NOW + 3600)
    assert first["X-Mailagent-Nonce"] != later["X-Mailagent-Nonce"]



@pytest.mark.parametrize("stamp", ["9" * 5000, "\u00b2", "\u0663" * 10, "", "12a"])
def test_malformed_timestamps_are_refused_without_another_exception(tmp_path, stamp):
    key = signing.generate_key(tmp_path / "k")
    headers = dict(signing.sign_request(key, "web1", b"{}"))
    headers[signing.H_TIMESTAMP] = stamp
    with pytest.raises(signing.BadSignature):
        signing.verify_request(signing.public_key_text(key), headers, b"{}")
