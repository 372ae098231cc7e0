"""Server certificates from the project CA on the control machine (collector, hub).

A certificate is kept under <ca_dir>/issued/<host>/ and reused while it names the same hosts and
addresses and has more than RENEW_DAYS left, so a second deploy uploads the same bytes and does
not restart anything.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path

from cryptography import x509
from pyinfra.api import DeployError

from mailagent import pki
from mailagent.names import is_host_name

RENEW_DAYS = 30
CA_NAME = "mailagent fleet CA"


def from_project_ca(ca_dir: Path, names: list[str], ips: list[str], host_name: str,
                    field: str) -> tuple[Path, Path]:
    """(cert, key) for `host_name`, issued (or reused) from the CA in `ca_dir` (made if missing)."""
    names, ips = list(names), list(ips)
    if is_ip(host_name):
        ips = list(dict.fromkeys([*ips, host_name]))
    elif is_host_name(host_name):
        names = list(dict.fromkeys([*names, host_name]))
    if not names:
        raise DeployError(f"{host_name}: {field}.names: give at least one DNS name the clients use")
    ca_dir = Path(ca_dir)
    pki.create_ca(ca_dir, CA_NAME)
    out = ca_dir / "issued" / re.sub(r"[^A-Za-z0-9.-]", "_", host_name)
    if _still_good(out / pki.SERVER_CERT, names, ips):
        return out / pki.SERVER_CERT, out / pki.SERVER_KEY
    return pki.issue_server_cert(ca_dir, names, ips, out)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _still_good(cert_path: Path, names: list[str], ips: list[str]) -> bool:
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = (set(alt.get_values_for_type(x509.DNSName)),
            {str(i) for i in alt.get_values_for_type(x509.IPAddress)})
    want = (set(names), {str(ipaddress.ip_address(i)) for i in ips})
    left = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    return have == want and left > dt.timedelta(days=RENEW_DAYS)
