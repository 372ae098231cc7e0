"""A finding (one line of the report) and what one sender's checks share while they run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mailagent.control.dnscheck import dmarc
from mailagent.control.dnscheck.senders import Sender

@dataclass(frozen=True)
class Finding:
    status: str          # ok | warn | fail
    domain: str
    check: str           # spf, spf-lookups, spf-provider, dkim, dmarc, alignment, mx, sender
    message: str
    publish: str | None = None

    def line(self) -> str:
        publish = f"; publish: {self.publish}" if self.publish else ""
        return f"{self.status:<4}  {self.domain}  {self.check:<12} {self.message}{publish}"

    def as_dict(self) -> dict:
        return asdict(self)


class Context:
    """What one sender's checks found so far; later checks (alignment) read earlier results."""

    def __init__(self, sender: Sender, facts):
        self.sender, self.facts, self.findings = sender, facts, []
        self.spf_authorised = False
        self.dkim_selectors: list[str] = []
        self.policy: dmarc.Policy | None = None

    @property
    def domain(self) -> str:
        return self.sender.domain

    def add(self, status: str, check: str, message: str, publish: str | None = None) -> None:
        self.findings.append(Finding(status, self.domain, check, message, publish))

