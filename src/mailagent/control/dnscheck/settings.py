"""Host data for the DNS readiness check (top-level keys, beside `relay`).

Its README table is generated with the others by mailagent.control.settings_docs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailagent.control.dnscheck.resolve import parse_nameserver

class DnsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dns_check: Literal["warn", "fail", "off"] = Field(
        "warn",
        description="The deploy's pre-flight (deploy/site.py, deploy/relay.py), run on the control "
        "machine before any host is touched: `warn` prints each problem of the host's sender "
        "domains and goes on, `fail` stops the deploy on any `fail` finding, `off` skips the "
        "check (labs and test domains, which public DNS does not know).",
    )
    dns_nameserver: str | None = Field(
        None,
        description="`IP[:PORT]` of the nameserver the pre-flight asks; default: the control "
        "machine's resolver. Point it at a recursive resolver that sees your public zones.",
    )
    dkim_selectors: dict[str, list[str]] = Field(
        default_factory=dict,
        description="DKIM selectors to look up, per sender domain, e.g. `{\"example.com\": "
        "[\"abc123token\", ...]}`: needed where the provider has no fixed ones (SES Easy DKIM "
        "tokens, Mailgun, SparkPost, a hub or custom smarthost); replaces the provider's "
        "(SendGrid `s1`/`s2`, Mandrill `mte1`/`mte2`, Google `google`, Microsoft "
        "`selector1`/`selector2`).",
    )

    @field_validator("dns_nameserver")
    @classmethod
    def _nameserver(cls, value: str | None) -> str | None:
        if value is not None:
            parse_nameserver(value)
        return value

    @classmethod
    def of(cls, data) -> DnsSettings:
        """From host data (a dict or pyinfra's HostData): only this model's keys are read."""
        return cls.model_validate({name: data.get(name) for name in cls.model_fields
                                   if data.get(name) is not None})
