"""Session-wide guard: no test sends DNS anywhere but loopback.

The deploy's DNS pre-flight and `mailagent dns-check` would otherwise ask the system resolver
during the many @fake and lab deploys. MAILAGENT_DNS_LOOPBACK_ONLY, set here at import so every
subprocess (pyinfra runs, tests/test_readme.py's fresh virtualenv) inherits it, makes
mailagent.control.dnscheck.resolve refuse any resolver without an explicit loopback nameserver; in this
process, dnspython's own senders refuse any non-loopback address as well.
"""

from __future__ import annotations

import functools
import ipaddress
import os

import dns.query
import pytest

from mailagent.control.dnscheck.resolve import GUARD_ENV, DnsGuardError

os.environ[GUARD_ENV] = "1"
SENDERS = ("udp", "tcp", "tls", "https", "quic", "udp_with_fallback")


def _loopback_only(send):
    @functools.wraps(send)
    def guarded(query, where, *args, **kwargs):
        try:
            loopback = ipaddress.ip_address(where).is_loopback
        except ValueError:  # a URL (DoH) or a name: not loopback by definition here
            loopback = False
        if not loopback:
            raise DnsGuardError(f"test sent DNS to {where}: only loopback servers are allowed")
        return send(query, where, *args, **kwargs)
    return guarded


@pytest.fixture(autouse=True, scope="session")
def _dns_to_loopback_only():
    originals = {name: getattr(dns.query, name) for name in SENDERS if hasattr(dns.query, name)}
    for name, send in originals.items():
        setattr(dns.query, name, _loopback_only(send))
    yield
    for name, send in originals.items():
        setattr(dns.query, name, send)
