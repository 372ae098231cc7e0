"""Provider presets: data (providers.json), read into typed records.

>>> get_provider("ses").host_for("eu-west-1")
'email-smtp.eu-west-1.amazonaws.com'
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

IMPLICIT_TLS_PORTS = frozenset({465, 2465, 1465})
STARTTLS_PORTS = frozenset({25, 587, 2525, 2587, 1587})


class Provider(BaseModel):
    """One smarthost provider as the presets describe it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    host: str | None = None
    host_template: str | None = None
    host_suffix: str | None = None  # the user names the host, and it must end so
    regions: dict[str, str] = Field(default_factory=dict)
    default_region: str | None = None
    region_pattern: str | None = None
    starttls_ports: tuple[int, ...] = ()
    implicit_ports: tuple[int, ...] = ()
    default_port: int | None = None
    username: str | None = None
    username_note: str = ""
    # "none": the smarthost accepts this host without AUTH (by IP or client certificate).
    credentials: Literal["required", "optional", "none"] = "required"
    note: str = ""
    warning: str = ""  # said at deploy time for every host on this preset
    concurrency: int = 20
    hints: dict[str, str] = Field(default_factory=dict)

    @property
    def has_regions(self) -> bool:
        return bool(self.regions or self.host_template)

    @property
    def fixed_host(self) -> bool:
        return bool(self.host or self.has_regions)

    @property
    def ports(self) -> tuple[int, ...]:
        return self.starttls_ports + self.implicit_ports

    def host_problem(self, host: str) -> str | None:
        """Why a host the user gave does not fit this provider, or None when it does."""
        if self.host_suffix and not host.lower().endswith(self.host_suffix):
            return (f"{host!r} does not end in {self.host_suffix}; give the tenant's MX host "
                    f"(example.com -> example-com{self.host_suffix})")
        return None

    def region_problem(self, region: str | None) -> str | None:
        """Why `region` does not fit this provider, or None when it does."""
        if not self.has_regions:
            return f"{self.name} has no regions" if region else None
        if self.regions:
            chosen = region or self.default_region
            if chosen not in self.regions:
                return f"unknown region {region!r} for {self.name}; one of: {', '.join(self.regions)}"
            return None
        if not region:
            return f"{self.name} needs a region, e.g. us-east-1"
        if self.region_pattern and not re.fullmatch(self.region_pattern, region):
            return f"{region!r} is not a {self.name} region name (like us-east-1)"
        return None

    def host_for(self, region: str | None) -> str | None:
        if self.host:
            return self.host
        if self.regions:
            return self.regions.get(region or self.default_region or "")
        if self.host_template and region:
            return self.host_template.format(region=region)
        return None

    def tls_for_port(self, port: int) -> str | None:
        if port in self.implicit_ports:
            return "implicit"
        if port in self.starttls_ports:
            return "starttls"
        return None

    def describe_ports(self) -> str:
        starttls = ", ".join(map(str, self.starttls_ports)) or "none"
        implicit = ", ".join(map(str, self.implicit_ports)) or "none"
        return f"STARTTLS: {starttls}; implicit TLS: {implicit}"


@cache
def providers() -> dict[str, Provider]:
    raw = json.loads(resources.files(__package__).joinpath("providers.json").read_text())
    return {name: Provider(name=name, **entry) for name, entry in raw.items()}


def get_provider(name: str) -> Provider:
    return providers()[name]


def tls_for_port(port: int) -> str | None:
    """The TLS mode a well-known port implies, or None when the port says nothing."""
    if port in IMPLICIT_TLS_PORTS:
        return "implicit"
    if port in STARTTLS_PORTS:
        return "starttls"
    return None
