"""The project CA: chains verify with OpenSSL and Python's ssl, extensions are right, keys private."""

from __future__ import annotations

import ssl
import stat
import subprocess
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mailagent import pki

NAME = "sink.lab.mailagent.test"


@pytest.fixture
def issued(tmp_path):
    ca_cert, ca_key = pki.create_ca(tmp_path / "ca", "test CA")
    cert, key = pki.issue_server_cert(tmp_path / "ca", [NAME, "alt.lab.mailagent.test"], ["10.0.2.2", "127.0.0.1"],
                                      tmp_path / "server")
    return {"ca_cert": ca_cert, "ca_key": ca_key, "cert": cert, "key": key, "dir": tmp_path}


def openssl_verify(ca, cert, *extra):
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), "-purpose", "sslserver", *extra, str(cert)],
                          capture_output=True, text=True, timeout=30)


def test_openssl_verifies_the_chain_for_each_name_and_ip(issued):
    for check in (["-verify_hostname", NAME], ["-verify_hostname", "alt.lab.mailagent.test"],
                  ["-verify_ip", "10.0.2.2"], ["-verify_ip", "127.0.0.1"]):
        done = openssl_verify(issued["ca_cert"], issued["cert"], *check)
        assert done.returncode == 0, (check, done.stdout, done.stderr)
        assert done.stdout.strip().endswith(": OK")


def test_openssl_refuses_other_names_and_other_cas(issued, tmp_path):
    wrong = openssl_verify(issued["ca_cert"], issued["cert"], "-verify_hostname", "wrong-name.lab.mailagent.test")
    assert wrong.returncode != 0
    assert openssl_verify(issued["ca_cert"], issued["cert"], "-verify_ip", "10.0.2.3").returncode != 0
    other_ca, _ = pki.create_ca(tmp_path / "other", "another CA")
    assert openssl_verify(other_ca, issued["cert"]).returncode != 0


def handshake(issued, server_hostname: str) -> str:
    """A real TLS handshake between Python's ssl client and server, in memory (no sockets)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(issued["cert"], issued["key"])
    client_ctx = ssl.create_default_context(cafile=str(issued["ca_cert"]))
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client.version()
    raise AssertionError("handshake did not finish")


def test_python_ssl_accepts_the_certificate_by_name_and_ip(issued):
    assert handshake(issued, NAME).startswith("TLSv1.")
    assert handshake(issued, "127.0.0.1").startswith("TLSv1.")


def test_python_ssl_refuses_a_wrong_name(issued):
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
        handshake(issued, "wrong-name.lab.mailagent.test")


def test_extensions(issued):
    ca = x509.load_pem_x509_certificate(issued["ca_cert"].read_bytes())
    leaf = x509.load_pem_x509_certificate(issued["cert"].read_bytes())
    ca_bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ca_bc.critical and ca_bc.value.ca and ca_bc.value.path_length == 0
    ca_ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_ku.key_cert_sign and ca_ku.crl_sign
    leaf_bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert leaf_bc.critical and not leaf_bc.value.ca
    leaf_ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert leaf_ku.digital_signature and not leaf_ku.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.cert_names(issued["cert"]) == ([NAME, "alt.lab.mailagent.test"], ["10.0.2.2", "127.0.0.1"])
    assert leaf.issuer == ca.subject
    assert leaf.subject.rfc4514_string() == f"CN={NAME}"


def test_validity_is_bounded(issued):
    for path, days in ((issued["ca_cert"], pki.CA_DAYS), (issued["cert"], pki.SERVER_DAYS)):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        span = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert span == pki.BACKDATE + timedelta(days=days)
    assert pki.SERVER_DAYS <= 397


def test_keys_are_0600_and_certs_readable(issued):
    for key in (issued["ca_key"], issued["key"]):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert b"PRIVATE KEY" in key.read_bytes()
    for cert in (issued["ca_cert"], issued["cert"]):
        assert stat.S_IMODE(cert.stat().st_mode) == 0o644


def test_create_ca_reuses_the_existing_ca(issued):
    before = issued["ca_cert"].read_bytes(), issued["ca_key"].read_bytes()
    again = pki.create_ca(issued["dir"] / "ca", "another name")
    assert again == (issued["ca_cert"], issued["ca_key"])
    assert (issued["ca_cert"].read_bytes(), issued["ca_key"].read_bytes()) == before


def test_half_a_ca_or_a_foreign_key_is_refused(tmp_path):
    cert, key = pki.create_ca(tmp_path / "a", "A")
    _, other_key = pki.create_ca(tmp_path / "b", "B")
    key.write_bytes(other_key.read_bytes())
    with pytest.raises(pki.PkiError, match="is not the key of"):
        pki.create_ca(tmp_path / "a", "A")
    key.unlink()
    with pytest.raises(pki.PkiError, match="only one of"):
        pki.create_ca(tmp_path / "a", "A")


def test_a_server_certificate_needs_a_name(issued):
    with pytest.raises(ValueError):
        pki.issue_server_cert(issued["dir"] / "ca", [], ["127.0.0.1"], issued["dir"] / "x")
