"""Which domains an inventory sends as, by which provider; parsers on their own."""

from __future__ import annotations

from mailagent.control.dnscheck import dkim, dmarc, spf
from mailagent.control.dnscheck.providers import DNS_FACTS
from mailagent.control.dnscheck.resolve import parse_nameserver
from mailagent.control.dnscheck.senders import HostEntry, collect
from mailagent.relay.presets import providers
from mailagent.relay.parse import parse_profile


def test_every_preset_has_its_dns_facts():
    assert set(providers()) - set(DNS_FACTS) == set()


def profile(**data):
    return parse_profile(data, environ={"KEY": "k"})


def test_domains_from_every_setting_merged_across_hosts():
    ses = profile(provider="ses", region="eu-west-1", username="u", password_env="KEY",
                  sender_address="noreply@example.com", myorigin="example.com",
                  generic_map={"www-data@web1": "app@shop.example.com"})
    senders, unnamed = collect([HostEntry("web1", ("relays",), ses), HostEntry("web2", ("relays",), ses),
                                HostEntry("bare", ("relays",), profile(provider="sendgrid", password="k"))])
    assert [(s.domain, s.route.via, s.hosts, s.sources) for s in senders] == [
        ("example.com", "ses (eu-west-1)", ("web1", "web2"), ("relay.sender_address", "relay.myorigin")),
        ("shop.example.com", "ses (eu-west-1)", ("web1", "web2"), ("relay.generic_map",))]
    assert unnamed == ["bare"]


def test_sender_routes_are_checked_by_their_own_provider():
    main = profile(provider="sendgrid", password="k", sender_address="app@example.com",
                   sender_routes=[{"senders": ["billing.example.com", "ops@example.net"],
                                   "provider": "mandrill", "username": "u", "password": "k"}])
    senders, _ = collect([HostEntry("web1", ("relays",), main,
                                    {"billing.example.com": ["custom1"]})])
    assert [(s.domain, s.route.provider, s.selectors, s.sources) for s in senders] == [
        ("example.com", "sendgrid", ("s1", "s2"), ("relay.sender_address",)),
        ("billing.example.com", "mandrill", ("custom1",), ("relay.sender_routes[0]",)),
        ("example.net", "mandrill", ("mte1", "mte2"), ("relay.sender_routes[0]",))]


def test_a_hub_relay_is_checked_against_the_hubs_provider():
    hub = profile(provider="sendgrid", password="k")
    web = profile(provider="hub", host="hub.example.com", sender_address="app@example.com")
    senders, unnamed = collect([HostEntry("hub1", ("hub",), hub, {}, ("hub.example.com",)),
                                HostEntry("web1", ("relays",), web)])
    (sender,) = senders
    assert (sender.route.provider, sender.route.via) == ("sendgrid", "hub hub.example.com -> sendgrid")
    assert unnamed == []  # the hub names no sender of its own, and needs none
    alone, _ = collect([HostEntry("web1", ("relays",), web)])
    assert (alone[0].route.provider, alone[0].route.smarthost) == ("hub", "hub.example.com")


def test_spf_parsing_and_the_record_to_publish():
    record = spf.parse("v=spf1 ip4:192.0.2.0/24 a:mail.example.com/28 include:_spf.google.com ~all")
    assert [t.name for t in record.terms] == ["ip4", "a", "include", "all"] and not record.problems
    assert spf.parse("v=spf1 ip6:192.0.2.1 foo:bar -all").problems == [
        "'ip6:192.0.2.1': 192.0.2.1 is not IPv6", "'foo:bar': unknown mechanism 'foo'"]
    assert spf.parse("v=spf1 redirect=a.example redirect=b.example").problems == ["redirect= appears twice"]
    assert spf.with_term("v=spf1 mx redirect=_spf.example.com", "include:sendgrid.net") == \
        "v=spf1 mx include:sendgrid.net redirect=_spf.example.com"


def test_dkim_and_dmarc_tags():
    assert dkim.parse("v=DKIM1; k=rsa; p=") == dkim.Key("rsa", revoked=True)
    assert dkim.parse("v=DKIM2; p=abc").problem == "v=DKIM2 (must be DKIM1)"
    assert dkim.parse("v=DKIM1; p=!!").problem == "p= is not base64"
    policy = dmarc.parse("v=DMARC1; p=quarantine; sp=reject; pct=50; aspf=s")
    assert (policy.p, policy.sp, policy.pct, policy.aspf) == ("quarantine", "reject", 50, "s")
    assert policy.problems == []
    assert dmarc.parse("v=DMARC1; p=maybe").problems == ["p=maybe is not one of none, quarantine, reject"]
    assert dmarc.aligned("em123.example.com", "example.com", "r") and not dmarc.aligned(
        "em123.example.com", "example.com", "s")


def test_nameserver_forms():
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
