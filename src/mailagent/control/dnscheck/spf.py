"""SPF (RFC 7208): parse a record, then walk it through include and redirect.

    parse("v=spf1 include:amazonses.com ~all").terms
        == [Term("+", "include", "amazonses.com"), Term("~", "all", "")]
    walk("example.com", resolver) -> Tree(lookups=2, voids=0, includes={"amazonses.com"}, ...)

Terms that cost one of the 10 DNS lookups: include, a, mx, ptr, exists and redirect. A lookup
that finds nothing (NXDOMAIN or no records) is void; more than 2 void lookups is a permerror.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

LOOKUP_LIMIT = 10
VOID_LIMIT = 2
MX_NAMES_LIMIT = 10
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
LOOKUP_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})
_TERM = re.compile(r"^([+\-~?]?)([a-z][a-z0-9._-]*)(?:([:=/])(.*))?$", re.I)


@dataclass(frozen=True)
class Term:
    qualifier: str  # + - ~ ?
    name: str       # a mechanism, or "redirect" / "exp" / another modifier
    value: str      # domain-spec or network ("" when none; for a/mx the "/24" part stays in)


@dataclass
class Record:
    terms: list[Term] = field(default_factory=list)
    redirect: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def all_qualifier(self) -> str | None:
        return next((t.qualifier for t in self.terms if t.name == "all"), None)


@dataclass
class Tree:
    """What the whole walk found: counts, included domains, authorised networks, problems."""

    lookups: int = 0
    voids: int = 0
    includes: set[str] = field(default_factory=set)
    networks: list = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


def parse(text: str) -> Record:
    """Terms and syntax problems of one record (macros are kept, not expanded)."""
    record = Record()
    if not is_spf(text):
        record.problems.append("does not start with v=spf1")
        return record
    for word in text.split()[1:]:
        term = _term(word, record.problems)
        if term is None:
            continue
        if term.name == "redirect":
            if record.redirect is not None:
                record.problems.append("redirect= appears twice")
            record.redirect = term.value
        elif term.name in MECHANISMS:
            record.terms.append(term)
    if record.redirect and record.all_qualifier is not None:
        record.redirect = None  # RFC 7208 6.1: redirect is ignored when the record has "all"
    return record


def _term(word: str, problems: list[str]) -> Term | None:
    match = _TERM.match(word)
    if not match:
        problems.append(f"{word!r} is not an SPF term")
        return None
    qualifier, name, separator, value = match.groups()
    name, value = name.lower(), value or ""
    if separator == "=":
        if qualifier:
            problems.append(f"{word!r}: a modifier takes no qualifier")
        if not value:
            problems.append(f"{word!r}: the modifier has no value")
        return None if name not in ("redirect",) else Term("", name, value)
    if name not in MECHANISMS:
        problems.append(f"{word!r}: unknown mechanism {name!r}")
        return None
    if separator == "/":
        value = "/" + value
    problem = _check_value(name, value)
    if problem:
        problems.append(f"{word!r}: {problem}")
        return None
    return Term(qualifier or "+", name, value)


def _check_value(name: str, value: str) -> str | None:
    if name in ("ip4", "ip6"):
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an {name} address or network"
        return None if network.version == int(name[-1]) else f"{value} is not IPv{name[-1]}"
    if name in ("include", "exists") and not value:
        return "needs a domain"
    if name == "all" and value:
        return "takes no value"
    return None


def walk(domain: str, resolver, tree: Tree | None = None, seen: frozenset = frozenset()) -> Tree:
    """Follow `domain`'s SPF through include and redirect, counting as a receiver would."""
    tree = tree or Tree()
    texts = [t for t in resolver.txt(domain).records if is_spf(t)]
    if len(texts) != 1:
        tree.problems.append(f"{domain}: {'no SPF record' if not texts else f'{len(texts)} SPF records'}"
                             " (permerror)")
        return tree
    record = parse(texts[0])
    tree.problems += [f"{domain}: {p}" for p in record.problems]
    for term in record.terms:
        _evaluate(term, domain, resolver, tree, seen | {domain.lower()})
    if record.redirect:
        _descend("redirect", record.redirect, resolver, tree, seen | {domain.lower()})
    return tree


def _evaluate(term: Term, domain: str, resolver, tree: Tree, seen: frozenset) -> None:
    if term.name in ("ip4", "ip6"):
        if term.qualifier == "+":
            tree.networks.append(ipaddress.ip_network(term.value, strict=False))
        return
    if term.name not in LOOKUP_TERMS:
        return
    if term.name == "include":
        _descend("include", term.value, resolver, tree, seen, authorises=term.qualifier == "+")
        return
    tree.lookups += 1
    target, cidr = _target(term.value, domain)
    if term.name == "a":
        _addresses(target, cidr, term.qualifier == "+", resolver, tree)
    elif term.name == "mx":
        _mx(target, cidr, term.qualifier == "+", resolver, tree)
    elif term.name == "exists" and not _has_macro(target):
        _count_void(resolver.addresses(target).void, tree)


def _descend(kind: str, target: str, resolver, tree: Tree, seen: frozenset, authorises: bool = True):
    tree.lookups += 1
    if _has_macro(target):
        return
    name = target.lower().rstrip(".")
    if name in seen:
        tree.problems.append(f"{kind}:{target} loops back to a record already followed (permerror)")
        return
    if authorises:
        tree.includes.add(name)
    if tree.lookups > LOOKUP_LIMIT:
        return  # already a permerror; stop asking
    if resolver.txt(name).void:
        _count_void(True, tree)
    walk(name, resolver, tree, seen)


def _addresses(name: str, cidr: tuple[int, int], authorises: bool, resolver, tree: Tree) -> None:
    if _has_macro(name):
        return
    answer = resolver.addresses(name)
    _count_void(answer.void, tree)
    if authorises:
        tree.networks += [_network(address, cidr) for address in answer.records]


def _mx(name: str, cidr: tuple[int, int], authorises: bool, resolver, tree: Tree) -> None:
    if _has_macro(name):
        return
    answer = resolver.mx(name)
    _count_void(answer.void, tree)
    exchanges = [host for _pref, host in answer.records if host != "."]
    if len(exchanges) > MX_NAMES_LIMIT:
        tree.problems.append(f"mx:{name} has {len(exchanges)} MX names (limit {MX_NAMES_LIMIT}, permerror)")
    for host in exchanges[:MX_NAMES_LIMIT]:
        _addresses(host, cidr, authorises, resolver, tree)


def _count_void(void: bool, tree: Tree) -> None:
    if void:
        tree.voids += 1


def _target(value: str, domain: str) -> tuple[str, tuple[int, int]]:
    """"example.com/24//64" -> ("example.com", (24, 64)); "" means the current domain."""
    name, _, rest = value.partition("/")
    v4, _, v6 = ("/" + rest).partition("//") if rest else ("", "", "")
    return (name or domain), (int(v4.strip("/") or 32), int(v6 or 128))


def _network(address, cidr: tuple[int, int]):
    prefix = cidr[0] if address.version == 4 else cidr[1]
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


def _has_macro(name: str) -> bool:
    return "%{" in name


def authorises(tree: Tree, addresses) -> list:
    """The addresses no authorised network of the tree covers."""
    return [a for a in addresses if not any(a.version == n.version and a in n for n in tree.networks)]


def with_term(text: str | None, term: str) -> str:
    """The record to publish: `text` with `term` (include:x, a:host) before its all term."""
    if not text:
        return f"v=spf1 {term} ~all"
    words = text.split()
    position = next((i for i, w in enumerate(words) if w.lstrip("+-~?").lower() == "all"
                     or w.lower().startswith("redirect=")), len(words))
    return " ".join(words[:position] + [term] + words[position:])
