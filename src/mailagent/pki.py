"""The project's own small CA: one self-signed root per use, server certificates issued by it.

Used by the lab's smarthost sink now, by the collector and the relay hub later. Keys are
ECDSA P-256: Postfix's OpenSSL 3, Python's ssl and every SMTP client we meet accept it, and
it is cheap to make. Layout on disk::

    <ca_dir>/ca.pem   the root certificate (what clients trust)
    <ca_dir>/ca.key   its key (0600)
    <out_dir>/cert.pem, <out_dir>/key.pem   one server certificate and its key (0600)

Errors: `PkiError` when a CA folder holds half a CA or a key that does not match.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailagent.fileio import write_atomic

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "cert.pem", "key.pem"

# A lab or fleet CA outlives many server certificates but not forever; server certificates
# stay within the 397 days clients such as browsers and some TLS libraries still enforce.
CA_DAYS = 3650
SERVER_DAYS = 397
# Back-date a little: a freshly booted VM's clock may run behind the host's.
BACKDATE = dt.timedelta(hours=1)


class PkiError(Exception):
    """A CA folder is unusable as it stands (half a CA, a key that does not match)."""


def create_ca(ca_dir: Path, name: str) -> tuple[Path, Path]:
    """Make a root CA named `name` in `ca_dir`, or reuse the one already there.

    Returns (cert_path, key_path).
    """
    ca_dir = Path(ca_dir)
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        load_ca(ca_dir)  # refuses a mismatched pair rather than issuing unverifiable certs
        return cert_path, key_path
    if cert_path.exists() or key_path.exists():
        raise PkiError(f"{ca_dir} holds only one of {CA_CERT}, {CA_KEY}; remove it to make a new CA")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = _base_builder(subject, subject, key.public_key(), CA_DAYS)
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())
    ca_dir.mkdir(parents=True, exist_ok=True)
    write_private(key_path, _key_pem(key))
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def issue_server_cert(ca_dir: Path, names: list[str], ips: list[str], out_dir: Path) -> tuple[Path, Path]:
    """Issue a serverAuth certificate for DNS `names` (the first is also the CN) and `ips`.

    Writes `out_dir/cert.pem` and `out_dir/key.pem` (0600), replacing any earlier pair;
    returns (cert_path, key_path).
    """
    if not names:
        raise ValueError("a server certificate needs at least one DNS name")
    ca_cert, ca_key = load_ca(Path(ca_dir))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _base_builder(subject, ca_cert.subject, key.public_key(), SERVER_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out_dir / SERVER_CERT, out_dir / SERVER_KEY
    write_private(key_path, _key_pem(key))
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key in `ca_dir`; PkiError when they do not belong together."""
    cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
    key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise PkiError(f"{ca_dir / CA_KEY} is not the key of {ca_dir / CA_CERT}")
    return cert, key


def cert_names(cert_path: Path) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses in a certificate's SAN (to decide whether to reissue)."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(i) for i in san.get_values_for_type(x509.IPAddress)]


def expires_at(cert_path: Path) -> dt.datetime:
    """When a certificate stops being valid (UTC, aware)."""
    return x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).not_valid_after_utc


def write_private(path: Path, data: bytes) -> None:
    """Write a secret atomically, 0600 from the first byte (never briefly world-readable)."""
    write_atomic(path, data, 0o600)


def _base_builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
