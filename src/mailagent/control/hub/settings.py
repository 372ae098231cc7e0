"""The hub's own settings (host data `hub_server`) and the fleet clients it accepts.

The hub relays onward with an ordinary relay profile (host data `relay`, the same model as every
host); this model holds only what is particular to accepting mail from the fleet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mechanism = Literal["PLAIN", "LOGIN", "CRAM-MD5"]


class HubSettings(BaseModel):
    """What fleet hosts connect to, and how the hub polices them."""

    model_config = ConfigDict(extra="forbid")

    starttls_port: int = Field(default=1587, ge=1, le=65535,
                               description="Submission port for fleet hosts, STARTTLS required before AUTH.")
    implicit_port: int = Field(default=1465, ge=1, le=65535,
                               description="Submission port with TLS from the first byte (wrapper mode).")
    listen: str = Field(default="0.0.0.0",
                        description="Address the two submission ports listen on (port 25 stays on loopback).")
    names: list[str] = Field(default_factory=list,
                             description="DNS names fleet hosts use for the hub; the certificate from "
                                         "the project CA carries them (default: the inventory name).")
    ips: list[str] = Field(default_factory=list, description="IP addresses to put in the certificate too.")
    cert: str | None = Field(default=None, description="Your own PEM certificate (control machine path) "
                                                        "instead of one from the project CA.")
    key: str | None = Field(default=None, description="Its private key (control machine path).")
    sasl_mechanisms: list[Mechanism] = Field(
        default_factory=lambda: ["PLAIN", "LOGIN", "CRAM-MD5"],
        description="Offered only after TLS; CRAM-MD5 for clients that need it (dotCloud's did).")
    message_rate_limit: int = Field(
        default=600, ge=0,
        description="Messages per minute one client address may submit (Postfix anvil); 0: no limit.")
    scope_senders: bool = Field(
        default=True,
        description="Each host's login may only use its own sender addresses (its name's domain, its "
                    "myorigin, sender_address and generic map targets): stolen credentials cannot "
                    "send as another host. 553 5.7.1 otherwise.")

    @model_validator(mode="after")
    def _pairs(self):
        if bool(self.cert) != bool(self.key):
            raise ValueError("cert and key must be given together")
        if self.starttls_port == self.implicit_port:
            raise ValueError("starttls_port and implicit_port must differ")
        return self


@dataclass(frozen=True)
class HubClient:
    """One fleet host allowed to submit: its login, password and the senders it owns."""

    login: str
    password: str = field(repr=False)
    domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()


def sender_patterns(client: HubClient) -> list[str]:
    """Regular expressions (Postfix regexp map keys) for the envelope senders the client owns.

    A domain also covers its dotted extensions (relay1 -> relay1.localdomain), since a null
    client's $myhostname is often its short name plus a local domain.
    """
    patterns = [f"/^[^@]*@{_escape(d)}(\\..*)?$/" for d in client.domains]
    patterns += [f"/^{_escape(a)}$/" for a in client.addresses]
    return patterns


def _escape(text: str) -> str:
    """Escape for a POSIX extended regular expression between Postfix's / delimiters."""
    return re.sub(r"([.^$*+?()\[\]{}|\\/])", r"\\\1", text)
