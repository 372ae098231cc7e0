"""Each finding kind, passing and failing, against the real nsd serving zones.py."""

from __future__ import annotations

import pytest

from mailagent.control.dnscheck.checks import check_sender
from mailagent.control.dnscheck.providers import facts_for
from mailagent.control.dnscheck.senders import Route, Sender


def check(resolver, domain: str, provider: str = "sendgrid", selectors=None, smarthost=None) -> dict:
    """{check: [(status, message, publish), ...]} for `domain`."""
    sender = Sender(f"{domain}.example.test", Route(provider, provider, smarthost),
                    tuple(selectors) if selectors is not None else facts_for(provider).selectors)
    found: dict = {}
    for finding in check_sender(sender, resolver):
        found.setdefault(finding.check, []).append((finding.status, finding.message, finding.publish))
    return found


def statuses(found: dict, name: str) -> list[str]:
    return [status for status, _message, _publish in found[name]]


def test_a_ready_domain_is_ok_everywhere(resolver):
    found = check(resolver, "good")
    assert {name: statuses(found, name) for name in found} == {
        "spf": ["ok"], "spf-lookups": ["ok"], "spf-provider": ["ok"], "dkim": ["ok", "ok"],
        "dmarc": ["ok"], "alignment": ["ok"], "mx": ["ok"]}
    assert "1 of 10 DNS lookups, 0 of 2 void" in found["spf-lookups"][0][1]
    # DKIM followed through the CNAME into the provider's zone.
    chain = "s1._domainkey.good.example.test -> s1.domainkey.u1.wl1.sendgrid.net: 2048-bit"
    assert chain in found["dkim"][0][1]
    assert "p=reject" in found["dmarc"][0][1]


def test_missing_spf_fails_with_the_record_to_publish(resolver):
    (status, message, publish), = check(resolver, "nospf", provider="ses")["spf"]
    assert (status, message) == ("fail", "no SPF record")
    assert publish == 'nospf.example.test. TXT "v=spf1 include:amazonses.com ~all"'


def test_two_spf_records_fail(resolver):
    (status, message, _), = check(resolver, "twospf")["spf"]
    assert status == "fail" and message.startswith("2 SPF records (receivers return permerror)")


def test_invalid_spf_fails(resolver):
    (status, message, _), = check(resolver, "badspf")["spf"]
    assert status == "fail" and "300.1.1.1" in message


def test_more_than_ten_lookups_through_includes_fail(resolver):
    (status, message, _), = check(resolver, "deep")["spf-lookups"]
    assert status == "fail"
    assert message.startswith("11 of 10 DNS lookups") and "more than 10 DNS lookups" in message


def test_more_than_two_void_lookups_fail(resolver):
    (status, message, _), = check(resolver, "voids")["spf-lookups"]
    assert status == "fail" and "3 of 2 void" in message and "more than 2 void lookups" in message


def test_spf_without_the_providers_include_fails_with_the_fixed_record(resolver):
    (status, message, publish), = check(resolver, "nosend", provider="ses")["spf-provider"]
    assert status == "fail" and "include:amazonses.com is missing" in message
    assert publish == 'nosend.example.test. TXT "v=spf1 ip4:192.0.2.0/24 mx include:amazonses.com -all"'


def test_hub_addresses_authorised_by_a_mechanism(resolver):
    found = check(resolver, "viahub", provider="hub", smarthost="hub.example.test")
    (status, message, _), = found["spf-provider"]
    assert status == "ok" and "198.51.100.7" in message
    assert statuses(found, "alignment") == ["ok"]  # the envelope keeps the sender's domain


def test_hub_addresses_not_authorised_fail(resolver):
    (status, message, publish), = check(resolver, "nosend", provider="hub",
                                        smarthost="hub.example.test")["spf-provider"]
    assert status == "fail" and "198.51.100.7 not covered" in message
    assert "a:hub.example.test -all" in publish


def test_revoked_dkim_key_fails(resolver):
    found = check(resolver, "revoked")["dkim"]
    assert found[0][0] == "fail" and "revoked (empty p=)" in found[0][1]
    assert found[1][0] == "ok"


def test_dkim_key_sizes(resolver):
    (s1, m1, _), (s2, m2, publish) = check(resolver, "small")["dkim"]
    assert (s1, s2) == ("warn", "fail")
    assert "1024-bit RSA key: still verifies" in m1
    assert "512-bit RSA key: verifiers refuse" in m2
    assert publish.startswith("s2._domainkey.small.example.test. CNAME s2.domainkey.")


def test_ed25519_key_is_ok(resolver):
    assert statuses(check(resolver, "ed"), "dkim") == ["ok", "ok"]


def test_missing_dkim_key_fails_and_unknown_selectors_warn(resolver):
    (status, message, publish), = check(resolver, "nokeys", provider="mandrill")["dkim"][:1]
    assert status == "fail" and message == "no key at mte1._domainkey.nokeys.example.test"
    assert publish == "mte1._domainkey.nokeys.example.test. CNAME dkim1.mandrillapp.com."
    (status, message, _), = check(resolver, "good", provider="ses")["dkim"]
    assert status == "warn" and 'dkim_selectors {"good.example.test": [...]}' in message


@pytest.mark.parametrize("domain, status, meaning", [
    ("good", "ok", "p=reject: mail that fails DMARC is refused"),
    ("quarantine", "ok", "p=quarantine: mail that fails DMARC goes to spam (pct=25"),
    ("nosend", "warn", "p=none: monitoring only"),
])
def test_dmarc_policy_is_explained(resolver, domain, status, meaning):
    (found_status, message, _), = check(resolver, domain)["dmarc"]
    assert found_status == status and message.startswith(meaning)


def test_missing_dmarc_warns_with_a_record_to_publish(resolver):
    (status, message, publish), = check(resolver, "ed")["dmarc"]
    assert status == "warn" and message.startswith("no DMARC record")
    assert publish.startswith('_dmarc.ed.example.test. TXT "v=DMARC1; p=none;')


def test_alignment_through_the_providers_dkim(resolver):
    (status, message, _), = check(resolver, "mte", provider="mandrill")["alignment"]
    assert status == "ok" and "DKIM d=mte.example.test (selector mte1, mte2)" in message


def test_nothing_aligned_under_reject_fails(resolver):
    (status, message, _), = check(resolver, "nokeys", provider="mandrill")["alignment"]
    assert status == "fail"
    assert "the envelope domain is mandrillapp.com" in message and "p=reject" in message


def test_nothing_aligned_without_enforcement_warns(resolver):
    (status, _message, _), = check(resolver, "nosend", provider="ses", selectors=["none1"])["alignment"]
    assert status == "warn"


@pytest.mark.parametrize("domain, status, text", [
    ("good", "ok", "bounces come back to 10 mx.good.example.test"),
    ("nullmx", "fail", "null MX (RFC 7505)"),
    ("implicit", "warn", "no MX: bounces go to the domain's own address"),
    ("missing", "fail", "missing.example.test does not exist (NXDOMAIN)"),
])
def test_mx(resolver, domain, status, text):
    (found_status, message, _), = check(resolver, domain)["mx"]
    assert found_status == status and message.startswith(text)


def test_an_unanswered_query_is_a_warning_not_a_crash(nsd):
    from mailagent.control.dnscheck.resolve import Resolver

    # nsd refuses names outside its zones: every check says it cannot check, none raises.
    found = check(Resolver(nsd.nameserver, timeout=1.0), "good", provider="sendgrid")
    assert found  # sanity: example.test is served
    outside = Sender("example.org", Route("sendgrid", "sendgrid", None), ("s1",))
    lines = check_sender(outside, Resolver(nsd.nameserver, timeout=1.0))
    assert {f.status for f in lines} <= {"warn"} and any("cannot check" in f.message for f in lines)
