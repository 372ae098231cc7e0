"""What the relay deploy leaves on the host for the agent: /etc/mailagent/relay.json, as one model.

    RelayTarget   the relay in use (no secret): written by `render.relay_settings`, read by
                  `mailagent check-relay`, relay_reach, postfix_health and send-test
    DrainTarget   where `mailagent drain` hands the rest of the queue: relay.json's `drain`, and
                  the agent's own `drain` setting (which the deploy fills from it)

    RelayTargetError   relay.json is unreadable or not a RelayTarget; the message names the file

Only pydantic here: the agent imports this in its service loop, which the renderer (jinja2) stays
out of.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Postfix's "[host]:port" next-hop form (brackets: no MX lookup); IPv6 as [ipv6:2001:db8::1].
_NEXTHOP = re.compile(r"^\[(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|ipv6:[0-9A-Fa-f:.]+)\]:(\d{1,5})$")


class RelayTargetError(Exception):
    """relay.json cannot be read or is not what the relay deploy writes."""


class DrainTarget(BaseModel):
    """The Postfix next hop `mailagent drain` switches to, and how it trusts it."""

    model_config = ConfigDict(extra="forbid")

    relay: str | None = Field(
        default=None, description="Postfix next hop `mailagent drain` hands the remaining queue to "
        "when the smarthost cannot take it before --timeout, as \"[host]:port\" "
        "(e.g. [hub.example.net]:1587); it becomes `relayhost`, and its SASL credentials must "
        "already be in the sasl_passwd map under that exact key. None: no handover, mail the "
        "smarthost cannot take stays queued and drain exits 1.")
    tls: Literal["starttls", "implicit"] = Field(
        default="starttls", description="TLS to drain.relay: `starttls` (smtp_tls_wrappermode = "
        "no, e.g. port 1587) or `implicit` (smtp_tls_wrappermode = yes, e.g. port 1465). TLS is "
        "always required on the handover.")
    ca_file: str | None = Field(
        default=None, description="Absolute path of the CA certificate that signed "
        "drain.relay's certificate; set: smtp_tls_security_level = secure with this "
        "smtp_tls_CAfile. None: `encrypt` (TLS required, certificate not verified).")

    @field_validator("relay")
    @classmethod
    def _nexthop(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _NEXTHOP.match(value)
        if not match or not 1 <= int(match.group(1)) <= 65535:
            raise ValueError('must be "[host]:port" with a port 1-65535, e.g. "[hub.example.net]:1587"')
        return value

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value


class RelayTarget(BaseModel):
    """relay.json: the smarthost as deployed, what checking it needs, and the drain target."""

    # A newer deploy may add a key before this host's agent is upgraded: ignored, not refused.
    model_config = ConfigDict(extra="ignore")

    provider: str | None = None
    host: str
    port: int
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    tls_verify: Literal["encrypt", "verify", "secure"] = "verify"
    ca_file: str | None = None  # None under tls_verify = encrypt
    username: str | None = None
    sender_address: str | None = None  # send-test's default sender
    relayhost: str | None = None  # "[host]:port", as in main.cf
    hints: dict[str, str] = Field(default_factory=dict)  # the provider's reply hints
    drain: DrainTarget | None = None

    def to_json(self) -> str:
        """The file's text: sorted keys, indented, every key present (None as null)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def read(path: Path) -> RelayTarget | None:
    """The RelayTarget in `path`; None when the file is missing (no relay deployed here)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RelayTargetError(f"{path}: {exc}") from None
    try:
        return RelayTarget.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'content'}: {e['msg']}"
                             for e in exc.errors())
        raise RelayTargetError(f"{path}: {problems}") from None
