"""The agent's signer (`load_signer`): OpenSSL's Ed25519 through libcrypto, the same signatures as
`cryptography`'s, a fallback for other key forms, and no `cryptography` in the agent process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailagent import signing
from mailagent.signing import BadSignature

NOW = 1_800_000_000


@pytest.fixture()
def key_path(tmp_path):
    signing.generate_key(tmp_path / "agent.key")
    return tmp_path / "agent.key"


def test_signer_is_libcrypto_and_signs_the_same_bytes(key_path):
    reference = signing.load_private_key(key_path)
    signer = signing.load_signer(key_path)
    assert isinstance(signer, signing.LibcryptoKey)
    for message in (b"", b"mailagent-v1\nweb1\n", os.urandom(70_000)):
        assert signer.sign(message) == reference.sign(message)  # Ed25519 is deterministic
    assert signing.public_key_text(signer) == signing.public_key_text(reference)


def test_signed_request_verifies_and_tampering_does_not(key_path):
    signer = signing.load_signer(key_path)
    public = signing.public_key_text(signing.load_private_key(key_path))
    headers = signing.sign_request(signer, "web1", b"{}", now=NOW)
    signing.verify_request(public, headers, b"{}", now=NOW)
    with pytest.raises(BadSignature):
        signing.verify_request(public, headers, b"{} ", now=NOW)


def test_another_key_form_falls_back_to_cryptography(tmp_path):
    path = tmp_path / "ec.key"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(BadSignature, match="not an Ed25519 private key"):
        signing.load_signer(path)


def test_without_usable_libcrypto_the_cryptography_key_is_used(key_path, monkeypatch):
    monkeypatch.setattr(signing, "_libcrypto", lambda: None)
    signer = signing.load_signer(key_path)
    assert not isinstance(signer, signing.LibcryptoKey)
    assert signer.sign(b"x") == signing.load_private_key(key_path).sign(b"x")


@pytest.mark.parametrize("pem", [b"", b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
                                 b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_malformed_pem_is_not_taken_for_a_seed(pem):
    assert signing._pkcs8_ed25519_seed(pem) is None


@pytest.mark.timeout(60)
def test_the_agent_process_signs_without_loading_cryptography(key_path):
    # The point of load_signer: `cryptography` (about 8 MB resident) stays out of `mailagent run`.
    code = textwrap.dedent(f"""
        import sys
        import mailagent.agent.service
        from mailagent import signing
        signer = signing.load_signer({str(key_path)!r})
        signing.sign_request(signer, "web1", b"{{}}")
        print(type(signer).__name__, sorted(m for m in sys.modules if m.startswith("cryptography")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["LibcryptoKey", "[]"]
