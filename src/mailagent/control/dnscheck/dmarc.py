"""DMARC (RFC 7489): the policy record of a sender domain, and how identifiers align with it.

    parse("v=DMARC1; p=reject; pct=50; adkim=s") ==
        Policy(p="reject", sp="reject", pct=50, adkim="s", aspf="r", rua=[], problems=[])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailagent.control.dnscheck.dkim import tags

POLICIES = ("none", "quarantine", "reject")
MEANING = {
    "none": "monitoring only: receivers take no action on mail that fails DMARC",
    "quarantine": "mail that fails DMARC goes to spam",
    "reject": "mail that fails DMARC is refused",
}


@dataclass
class Policy:
    p: str = "none"
    sp: str = "none"
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    rua: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def meaning(self) -> str:
        text = f"p={self.p}: {MEANING[self.p]}"
        if self.pct < 100 and self.p != "none":
            text += f" (pct={self.pct}: {self.pct}% of it; the rest is treated one step milder)"
        return text


def is_dmarc(text: str) -> bool:
    return text.replace(" ", "").upper().startswith("V=DMARC1")


def parse(text: str) -> Policy:
    values = tags(text)
    policy = Policy()
    if values.get("v") != "DMARC1":
        policy.problems.append("does not start with v=DMARC1")
    policy.p = _choice(values, "p", POLICIES, "none", policy.problems, required="rua" not in values)
    policy.sp = _choice(values, "sp", POLICIES, policy.p, policy.problems)
    policy.adkim = _choice(values, "adkim", ("r", "s"), "r", policy.problems)
    policy.aspf = _choice(values, "aspf", ("r", "s"), "r", policy.problems)
    policy.rua = [uri for uri in values.get("rua", "").split(",") if uri]
    try:
        policy.pct = int(values.get("pct", "100"))
        if not 0 <= policy.pct <= 100:
            raise ValueError
    except ValueError:
        policy.problems.append(f"pct={values['pct']} is not 0-100")
        policy.pct = 100
    return policy


def _choice(values: dict, name: str, allowed, default: str, problems: list[str], required=False) -> str:
    if name not in values:
        if required:
            problems.append(f"no {name}= tag")
        return default
    value = values[name].lower()
    if value not in allowed:
        problems.append(f"{name}={values[name]} is not one of {', '.join(allowed)}")
        return default
    return value


def organizational(domain: str) -> str:
    """The registrable domain, approximated by the last two labels (no public suffix list)."""
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


def aligned(identifier: str, domain: str, mode: str) -> bool:
    """Relaxed: same organizational domain; strict: the same name."""
    identifier, domain = identifier.lower().rstrip("."), domain.lower().rstrip(".")
    if mode == "s":
        return identifier == domain
    return organizational(identifier) == organizational(domain)
