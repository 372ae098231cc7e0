"""What each provider preset needs in a sender domain's DNS: a table, keyed by preset name.

`spf_include`: the name the provider's documentation says to include (None: authorise the
smarthost's own addresses instead, via ip4/ip6/a/mx). `selectors`: the DKIM selectors the provider
always uses (empty: they differ per account, so the profile's `dkim_selectors` names them).
`envelope`: whose domain the bounce address (SMTP MAIL FROM, what SPF checks) carries by
default: "sender" (the sender's own), "subdomain" (a provider-managed subdomain of it), or the
provider's own domain, which can never align with the sender for DMARC.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DnsFacts:
    spf_include: str | None
    selectors: tuple[str, ...]
    envelope: str
    selector_hint: str = ""


DNS_FACTS = {
    "ses": DnsFacts("amazonses.com", (), "amazonses.com",
                    "Easy DKIM's three tokens from the SES console (<token>._domainkey CNAME "
                    "<token>.dkim.amazonses.com)"),
    "sendgrid": DnsFacts("sendgrid.net", ("s1", "s2"), "subdomain"),
    "mailgun": DnsFacts("mailgun.org", (), "subdomain",
                        "the selector Mailgun shows under the domain's DNS records (e.g. k1, krs, smtp)"),
    "mandrill": DnsFacts("spf.mandrillapp.com", ("mte1", "mte2"), "mandrillapp.com"),
    "sparkpost": DnsFacts("sparkpostmail.com", (), "sparkpostmail.com",
                          "the scph… selector SparkPost shows for the sending domain"),
    "gmail": DnsFacts("_spf.google.com", ("google",), "sender"),
    "google_relay": DnsFacts("_spf.google.com", ("google",), "sender"),
    "office365": DnsFacts("spf.protection.outlook.com", ("selector1", "selector2"), "sender"),
    "office365_connector": DnsFacts("spf.protection.outlook.com", ("selector1", "selector2"), "sender"),
    "outlook": DnsFacts("spf.protection.outlook.com", (), "sender",
                        "Outlook.com signs with Microsoft's own keys for its own domains"),
    "hub": DnsFacts(None, (), "sender", "the selectors your hub's onward provider signs with"),
    "custom": DnsFacts(None, (), "sender", "the selectors your smarthost signs with"),
}


def facts_for(provider: str) -> DnsFacts:
    """A preset this table does not know yet is checked like a custom smarthost."""
    return DNS_FACTS.get(provider, DNS_FACTS["custom"])


# What to publish for a missing DKIM key; {selector}, {domain}, {n} (1 for the first selector),
# {dashed} (the domain with dots as dashes, as Microsoft names it).
DKIM_PUBLISH = {
    "sendgrid": '{selector}._domainkey.{domain}. CNAME {selector}.domainkey.<id>.wl<n>.sendgrid.net. '
                '(from SendGrid\'s domain authentication page)',
    "mandrill": "{selector}._domainkey.{domain}. CNAME dkim{n}.mandrillapp.com.",
    "office365": "{selector}._domainkey.{domain}. CNAME "
                 "{selector}-{dashed}._domainkey.<tenant>.onmicrosoft.com.",
    "office365_connector": "{selector}._domainkey.{domain}. CNAME "
                           "{selector}-{dashed}._domainkey.<tenant>.onmicrosoft.com.",
    "ses": "{selector}._domainkey.{domain}. CNAME {selector}.dkim.amazonses.com.",
}
DKIM_PUBLISH_DEFAULT = ('{selector}._domainkey.{domain}. TXT '
                        '"v=DKIM1; k=rsa; p=<the public key {title} shows>"')
