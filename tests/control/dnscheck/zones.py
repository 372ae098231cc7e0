"""Zones for the DNS readiness tests: one sender domain per situation, and stand-ins for the
providers' own zones (their SPF and DKIM targets), all served by the test's nsd.

Sender domains live under example.test; `_dmarc.example.test` is absent on purpose, so a
subdomain without DMARC inherits nothing.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


@cache
def rsa_key(bits: int) -> str:
    if bits < 1024:  # cryptography no longer makes keys this small; an odd modulus of the size does
        key = rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 0x1F).public_key()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def ed25519_key() -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def txt(text: str) -> str:
    """A TXT rdata in zone-file form: split into <=255-byte character-strings."""
    return " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))


def dkim(p: str, kind: str = "rsa") -> str:
    return txt(f"v=DKIM1; k={kind}; p={p}")


def _include_chain(count: int) -> str:
    """l1 includes l2 ... each costs a lookup; l{count} ends the chain."""
    lines = [f'l{i}.chain IN TXT "v=spf1 include:l{i + 1}.chain.example.test -all"' for i in range(1, count)]
    return "\n".join(lines + [f'l{count}.chain IN TXT "v=spf1 ip4:192.0.2.1 -all"']) + "\n"


def example_zone() -> str:
    good = dkim(rsa_key(2048))
    return f"""
good            IN TXT "v=spf1 include:sendgrid.net -all"
good            IN MX 10 mx.good
mx.good         IN A 192.0.2.25
_dmarc.good     IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.example.test"
s1._domainkey.good IN CNAME s1.domainkey.u1.wl1.sendgrid.net.
s2._domainkey.good IN CNAME s2.domainkey.u1.wl1.sendgrid.net.

nospf           IN TXT "google-site-verification=abc"
nospf           IN MX 10 mx.good

twospf          IN TXT "v=spf1 include:sendgrid.net -all"
twospf          IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
twospf          IN MX 10 mx.good

badspf          IN TXT "v=spf1 include:sendgrid.net ip4:300.1.1.1 -all"

deep            IN TXT "v=spf1 include:l1.chain.example.test include:sendgrid.net -all"
{_include_chain(10)}
voids           IN TXT "v=spf1 a:gone1.example.test a:gone2.example.test mx:gone3.example.test" " include:sendgrid.net -all"

nosend          IN TXT "v=spf1 ip4:192.0.2.0/24 mx -all"
nosend          IN MX 10 mx.good
_dmarc.nosend   IN TXT "v=DMARC1; p=none"

revoked         IN TXT "v=spf1 include:sendgrid.net -all"
s1._domainkey.revoked IN TXT "v=DKIM1; p="
s2._domainkey.revoked IN TXT {good}

small           IN TXT "v=spf1 include:sendgrid.net -all"
s1._domainkey.small IN TXT {dkim(rsa_key(1024))}
s2._domainkey.small IN TXT {dkim(rsa_key(512))}

ed              IN TXT "v=spf1 include:sendgrid.net -all"
s1._domainkey.ed IN TXT {dkim(ed25519_key(), "ed25519")}
s2._domainkey.ed IN CNAME s2.domainkey.u1.wl1.sendgrid.net.

quarantine      IN TXT "v=spf1 include:sendgrid.net -all"
_dmarc.quarantine IN TXT "v=DMARC1; p=quarantine; pct=25"

nullmx          IN TXT "v=spf1 include:sendgrid.net -all"
nullmx          IN MX 0 .
implicit        IN A 192.0.2.80

mte             IN TXT "v=spf1 include:spf.mandrillapp.com -all"
_dmarc.mte      IN TXT "v=DMARC1; p=reject"
mte1._domainkey.mte IN CNAME dkim1.mandrillapp.com.
mte2._domainkey.mte IN CNAME dkim2.mandrillapp.com.
nokeys          IN TXT "v=spf1 include:spf.mandrillapp.com -all"
_dmarc.nokeys   IN TXT "v=DMARC1; p=reject"

viahub          IN TXT "v=spf1 a:hub.example.test -all"
viahub          IN MX 10 mx.good
_dmarc.viahub   IN TXT "v=DMARC1; p=quarantine"
hub             IN A 198.51.100.7
"""


ZONES = {
    "example.test": example_zone(),
    "sendgrid.net": f"""
@                       IN TXT "v=spf1 ip4:167.89.0.0/17 ip4:149.72.0.0/16 ~all"
s1.domainkey.u1.wl1     IN TXT {dkim(rsa_key(2048))}
s2.domainkey.u1.wl1     IN TXT {dkim(rsa_key(2048))}
""",
    "mandrillapp.com": f"""
spf     IN TXT "v=spf1 ip4:198.2.128.0/18 ~all"
dkim1   IN TXT {dkim(rsa_key(2048))}
dkim2   IN TXT {dkim(rsa_key(2048))}
""",
    "amazonses.com": """
@       IN TXT "v=spf1 ip4:199.255.192.0/22 ip4:54.240.0.0/18 ~all"
""",
}


# The zones behind the README's example output (tests/control/dnscheck/test_readme_example.py).
README_ZONES = {
    "example.com": """
@       IN TXT "v=spf1 include:_spf.google.com ~all"
@       IN MX 10 mx1.example.com.
mx1     IN A 192.0.2.25
_dmarc  IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.com"
4f3kmj7dxyz._domainkey IN CNAME 4f3kmj7dxyz.dkim.amazonses.com.
""",
    "google.com": """
_spf        IN TXT "v=spf1 include:_netblocks.google.com ~all"
_netblocks  IN TXT "v=spf1 ip4:35.190.247.0/24 ~all"
""",
    "amazonses.com": f"""
@                   IN TXT "v=spf1 ip4:54.240.0.0/18 ~all"
4f3kmj7dxyz.dkim    IN TXT {dkim(rsa_key(1024))}
""",
}
