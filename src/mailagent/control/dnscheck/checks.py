"""Findings for one sender: SPF, DKIM, DMARC, their alignment, and MX. One line each:

    ok    example.com  spf          one SPF record: v=spf1 include:amazonses.com ~all
    fail  example.com  dkim         no key at s1._domainkey.example.com; publish: ...

A check that cannot query (timeout, SERVFAIL) becomes a `warn` finding saying so, never a crash;
only DnsGuardError (a query the tests' guard refused) goes up.
"""

from __future__ import annotations

from mailagent.control.dnscheck.check_dkim import check_dkim
from mailagent.control.dnscheck.check_policy import check_alignment, check_dmarc, check_mx
from mailagent.control.dnscheck.check_spf import check_spf
from mailagent.control.dnscheck.findings import Context, Finding
from mailagent.control.dnscheck.providers import facts_for
from mailagent.control.dnscheck.resolve import DnsError
from mailagent.control.dnscheck.senders import Sender, collect

# In this order: alignment reads what SPF, DKIM and DMARC found.
STEPS = (("spf", check_spf), ("dkim", check_dkim), ("dmarc", check_dmarc),
         ("alignment", check_alignment), ("mx", check_mx))
__all__ = ["Finding", "check_all", "check_hosts", "check_sender"]


def check_sender(sender: Sender, resolver) -> list[Finding]:
    facts = facts_for(sender.route.provider)
    context = Context(sender, facts)
    for name, step in STEPS:
        try:
            step(context, resolver)
        except DnsError as exc:
            context.add("warn", name, f"cannot check: {exc}")
    return context.findings


def check_all(senders, unnamed, resolver) -> list[Finding]:
    """Every sender's findings, after one line per relay host that names no sender domain."""
    findings = [Finding("warn", host, "sender", "names no sender domain (relay.sender_address or "
                        "myorigin), so its mail leaves as user@<its host name>, whose DNS nobody "
                        "checked") for host in unnamed]
    for sender in senders:
        findings += check_sender(sender, resolver)
    return findings


def check_hosts(entries, nameserver_of, make_resolver) -> tuple[list[Finding], list]:
    """Findings for inventory hosts, asking each host's nameserver (`nameserver_of(name)`)."""
    groups: dict = {}
    for entry in entries:
        groups.setdefault(nameserver_of(entry.name), []).append(entry)
    findings, senders = [], []
    for nameserver, members in groups.items():
        found, unnamed = collect(members)
        findings += check_all(found, unnamed, make_resolver(nameserver))
        senders += found
    return findings, senders
