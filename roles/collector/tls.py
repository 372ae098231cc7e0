"""The collector's certificate: issued by the project CA on the control machine, or the user's."""

from __future__ import annotations

from pathlib import Path

from pyinfra.api import DeployError

from roles import certificates
from roles.collector.settings import TlsSource

CA_NAME = certificates.CA_NAME


def certificate_files(tls: TlsSource, host_name: str) -> tuple[Path, Path]:
    """(cert, key) paths on the control machine for this host."""
    if tls.cert:
        cert, key = Path(tls.cert), Path(tls.key)
        for path in (cert, key):
            if not path.is_file():
                raise DeployError(f"{host_name}: collector_server.tls: {path} is not a file")
        return cert, key
    return certificates.from_project_ca(Path(tls.ca_dir), list(tls.names), list(tls.ips), host_name,
                                        "collector_server.tls")
