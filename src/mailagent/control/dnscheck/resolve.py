"""Thin wrapper around dnspython: the queries the checks make, with CNAME chains followed.

    Resolver("127.0.0.1:5353").txt("example.com")
        == Answer(name="example.com", records=["v=spf1 include:amazonses.com ~all"], chain=())

An answer with no records (NXDOMAIN or no data) is a *void* lookup in RFC 7208's sense.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

import dns.exception
import dns.resolver

GUARD_ENV = "MAILAGENT_DNS_LOOPBACK_ONLY"
MAX_CNAME_HOPS = 8


class DnsError(RuntimeError):
    """A query that got no usable answer (timeout, SERVFAIL, refused, a CNAME loop)."""


class DnsGuardError(RuntimeError):
    """A query refused before it left: the guard wants an explicit loopback nameserver."""


@dataclass(frozen=True)
class Answer:
    name: str
    records: list
    chain: tuple[str, ...] = ()  # the CNAME targets followed, in order
    exists: bool = True          # False: NXDOMAIN

    @property
    def void(self) -> bool:
        return not self.records


def parse_nameserver(text: str) -> tuple[str, int]:
    """"192.0.2.53", "127.0.0.1:5353", "::1", "[::1]:5353" -> (address, port)."""
    text = text.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = str(ipaddress.ip_address(host))
        number = int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not a nameserver address like 192.0.2.53 or 127.0.0.1:5353") from None
    if not 0 < number < 65536:
        raise ValueError(f"{text!r}: port {number} is out of range")
    return address, number


def guard(nameserver: str | None, environ=None) -> None:
    """Refuse, when MAILAGENT_DNS_LOOPBACK_ONLY is set, anything but an explicit loopback server."""
    environ = os.environ if environ is None else environ
    if not environ.get(GUARD_ENV):
        return
    if nameserver is None:
        raise DnsGuardError(f"{GUARD_ENV} is set: DNS needs an explicit loopback nameserver "
                            "(dns_nameserver / --nameserver), not the system resolver")
    address, _port = parse_nameserver(nameserver)
    if not ipaddress.ip_address(address).is_loopback:
        raise DnsGuardError(f"{GUARD_ENV} is set: nameserver {nameserver} is not on loopback")


class Resolver:
    """The checks' queries; `nameserver` None means the system's resolver."""

    def __init__(self, nameserver: str | None = None, timeout: float = 5.0, environ=None):
        guard(nameserver, environ)
        self.nameserver = nameserver
        self._resolver = dns.resolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            address, port = parse_nameserver(nameserver)
            self._resolver.nameservers = [address]
            self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._cache: dict[tuple[str, str], Answer] = {}

    def txt(self, name: str) -> Answer:
        """TXT strings (each record's character-strings joined), CNAMEs followed."""
        answer = self.query(name, "TXT")
        texts = [b"".join(r.strings).decode("utf-8", "replace") for r in answer.records]
        return Answer(answer.name, texts, answer.chain, answer.exists)

    def mx(self, name: str) -> Answer:
        """[(preference, exchange)] with exchange "." for a null MX."""
        answer = self.query(name, "MX")
        records = [(r.preference, _text(r.exchange)) for r in answer.records]
        return Answer(answer.name, sorted(records), answer.chain, answer.exists)

    def addresses(self, name: str) -> Answer:
        """A and AAAA addresses together; void only when neither has any."""
        found, exists = [], False
        for rdtype in ("A", "AAAA"):
            answer = self.query(name, rdtype)
            found += [ipaddress.ip_address(r.address) for r in answer.records]
            exists = exists or answer.exists
        return Answer(_text(name), found, (), exists)

    def query(self, name: str, rdtype: str) -> Answer:
        key = (_text(name).lower(), rdtype)
        if key not in self._cache:
            self._cache[key] = self._follow(_text(name), rdtype)
        return self._cache[key]

    def _follow(self, name: str, rdtype: str) -> Answer:
        """Follow CNAMEs across zones: an authoritative server may answer one hop at a time."""
        chain, current = [], name
        for _hop in range(MAX_CNAME_HOPS):
            records, canonical, exists = self._ask(current, rdtype)
            if canonical.lower() != current.lower():
                chain.append(canonical)
            if records or canonical.lower() == current.lower():
                return Answer(name, records, tuple(chain), exists)
            current = canonical
        raise DnsError(f"{name}: more than {MAX_CNAME_HOPS} CNAMEs ({' -> '.join(chain)})")

    def _ask(self, name: str, rdtype: str):
        """(records, the name the response's CNAME chain ends at, name exists)."""
        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return [], name, False
        except dns.resolver.NoNameservers as exc:
            raise DnsError(f"{name} {rdtype}: no nameserver answered ({_reason(exc)})") from None
        except dns.exception.Timeout:
            raise DnsError(f"{name} {rdtype}: timed out (nameserver {self.nameserver or 'system'})") from None
        records = list(answer.rrset) if answer.rrset is not None else []
        return records, _text(answer.canonical_name), True


def _reason(exc: Exception) -> str:
    return str(exc).split(": ", 1)[-1][:200]


def _text(name) -> str:
    text = name.to_text() if hasattr(name, "to_text") else str(name)
    return text if text == "." else text.rstrip(".")
