"""What rendering knows of the host, and the Postfix forms every rendered file shares.

`Target` is gathered by the role as facts (or given to `mailagent render`); `destination` is the
one relayhost form that main.cf, the SASL map and the sender maps must agree on.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailagent.relay.profile import RelayProfile

DEBIAN_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
RHEL_CA_BUNDLE = "/etc/pki/tls/certs/ca-bundle.crt"
PRIVATE_CA_PATH = "/etc/postfix/relay-ca.pem"


@dataclass(frozen=True)
class Target:
    """What rendering needs to know about the host (gathered by the role as facts)."""

    hostname: str = "localhost"
    os_family: str = "debian"
    has_ipv6: bool = True
    postfix_version: tuple[int, int] = (3, 10)

    @property
    def ca_bundle(self) -> str:
        return RHEL_CA_BUNDLE if self.os_family == "rhel" else DEBIAN_CA_BUNDLE


def destination(host: str, port: int) -> str:
    """The relayhost form; sasl_passwd keys must use exactly the same one."""
    return f"[{host}]:{port}"


def ca_file(profile: RelayProfile, target: Target) -> str:
    if profile.ca_pem:
        return PRIVATE_CA_PATH
    return profile.ca_file or target.ca_bundle


def map_text(entries: dict[str, str]) -> str:
    return "".join(f"{key} {value}\n" for key, value in sorted(entries.items()))
