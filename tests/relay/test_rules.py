"""Every validation rule, with the message it gives (one line per problem, naming the field)."""

from __future__ import annotations

import pytest

from mailagent.relay.parse import parse_profile
from mailagent.relay.profile import ProfileError

SES = {"provider": "ses", "region": "us-east-1", "username": "AKIA", "password": "pw"}


def problems(data: dict, environ=None) -> list[str]:
    with pytest.raises(ProfileError) as raised:
        parse_profile(data, environ=environ or {})
    return raised.value.problems


@pytest.mark.parametrize(
    "data, expected",
    [
        (dict(SES, tls="none"), "relay.tls: credentials need TLS: the password must never cross the network in clear"),
        (dict(SES, port=2587, tls="implicit"), "relay.tls: implicit contradicts port 2587, which speaks starttls TLS"),
        (dict(SES, port=2465, tls="starttls"), "relay.tls: starttls contradicts port 2465, which speaks implicit TLS"),
        (dict(SES, port=25), "relay.port: 25 is blocked or throttled on most cloud networks; use 587, 2525, 2587 or 2465, or set allow_port_25: true"),
        (dict(SES, username="a:b"), "relay.username: must not contain ':' (Postfix splits user and password at the first ':')"),
        (dict(SES, sender_address="noreply"), "relay.sender_address: 'noreply' is not an address with a domain (user@example.com)"),
        (dict(SES, forward_root_to="ops@localhost"), "relay.forward_root_to: 'ops@localhost' is not an address with a domain (user@example.com)"),
        (dict(SES, myorigin="not a domain"), "relay.myorigin: 'not a domain' is not a domain name"),
        (dict(SES, generic_map={"www-data": "app"}), "relay.generic_map.www-data: 'app' is not an address with a domain"),
        (dict(SES, ca_file=""), "relay.ca_file: verify needs a CA file on the target"),
        (dict(SES, ca_pem="hello"), "relay.ca_pem: is not PEM text (no BEGIN CERTIFICATE line)"),
        (dict(SES, colour="blue"), "relay.colour: unknown setting (see `mailagent render --help` and the README's settings table)"),
        (dict(SES, port=2525), "relay.port: 2525 is not a port ses offers (STARTTLS: 25, 587, 2587; implicit TLS: 465, 2465)"),
        ({"provider": "sendgrid", "port": 2465, "password": "k"}, "relay.port: 2465 is not a port sendgrid offers (STARTTLS: 25, 587, 2525; implicit TLS: 465)"),
        ({"provider": "sendgrid", "username": "bob", "password": "k"}, "relay.username: sendgrid's SMTP user name is always 'apikey'"),
        (dict(SES, region=None), "relay.region: ses needs a region, e.g. us-east-1"),
        (dict(SES, region="mars"), "relay.region: 'mars' is not a ses region name (like us-east-1)"),
        ({"provider": "mailgun", "region": "asia", "username": "u", "password": "p"}, "relay.region: unknown region 'asia' for mailgun; one of: us, eu"),
        ({"provider": "gmail", "host": "smtp.example.com", "username": "u", "password": "p"}, "relay.host: gmail has a fixed host; use provider: custom for another host"),
        ({"provider": "custom", "port": 2525}, "relay.host: required for provider custom"),
        ({"provider": "custom", "host": "relay.example.com"}, "relay.port: required for provider custom"),
        ({"provider": "custom", "host": "relay.example.com", "port": 3025}, "relay.tls: cannot tell the TLS mode of port 3025; set tls: starttls or implicit"),
        ({"provider": "custom", "host": "[relay.example.com]", "port": 587}, "relay.host: '[relay.example.com]' must be a bare host name (no brackets, port or scheme)"),
        (dict(SES, username=None), "relay.username: a password needs a user name"),
        (dict(SES, password=None), "relay.password: required (or password_env)"),
        (dict(SES, password="a\nb"), "relay.password: contains a line break (a pasted key with a newline breaks AUTH)"),
        (dict(SES, password=None, password_env="SES_PW"), "relay.password_env: environment variable SES_PW is not set"),
        (dict(SES, password_env="SES_PW"), "relay.password_env: give either password or password_env, not both"),
        (dict(SES, tls_verify="paranoid"), "relay.tls_verify: 'paranoid' is not allowed; input should be 'encrypt', 'verify' or 'secure'"),
        (dict(SES, port=2587, fallback_relays=[{"host": "b.example.com", "port": 2465}]), "relay.fallback_relays.0.port: port 2465 speaks implicit TLS but the primary relay uses starttls (smtp_tls_wrappermode applies to every relay)"),
        (dict(SES, extra_main_cf={"smtp_sasl_password_maps": "static:u:p"}), "relay.extra_main_cf.smtp_sasl_password_maps: credentials belong in username/password, not main.cf"),
        (dict(SES, queue_lifetime="forever"), "relay.queue_lifetime: String should match pattern '^[0-9]+[smhdw]?$'"),
    ],
)
def test_rule_message(data, expected):
    assert expected in problems(data)


def test_every_problem_is_reported_at_once():
    found = problems({"provider": "sendgrid", "port": 2465, "tls": "starttls", "username": "x:y",
                      "password": "p", "colour": 1})
    assert len(found) == 5
    assert all(line.startswith("relay.") for line in found)


def test_port_25_allowed_explicitly():
    profile = parse_profile(dict(SES, port=25, allow_port_25=True), environ={})
    assert (profile.port, profile.tls) == (25, "starttls")


@pytest.mark.parametrize("port, tls", [(2465, "implicit"), (465, "implicit"), (2587, "starttls"), (587, "starttls")])
def test_tls_mode_follows_from_the_port(port, tls):
    assert parse_profile(dict(SES, port=port), environ={}).tls == tls


def test_preset_fills_host_username_and_limits():
    profile = parse_profile({"provider": "sendgrid", "port": 2525, "password": "SG.key"}, environ={})
    assert (profile.host, profile.username, profile.concurrency) == ("smtp.sendgrid.net", "apikey", 20)
    eu = parse_profile({"provider": "mailgun", "region": "eu", "username": "u@mg.example.com",
                        "password": "p"}, environ={})
    assert eu.host == "smtp.eu.mailgun.org"


def test_password_from_the_environment():
    profile = parse_profile(dict(SES, password=None, password_env="SES_PW"), environ={"SES_PW": "from-env"})
    assert profile.secret() == "from-env"


def test_password_is_not_in_the_profile_repr():
    profile = parse_profile(dict(SES, password="hunter2-secret"), environ={})
    assert "hunter2-secret" not in repr(profile) and "hunter2-secret" not in str(profile.model_dump())


@pytest.mark.parametrize(
    "key, expected",
    [
        ("inet_interfaces", "is set by mailagent (the relay listens on loopback only)"),
        ("inet_protocols", "is set by mailagent (the relay listens on loopback only); use inet_protocols"),
        ("mynetworks", "is set by mailagent (only this host may hand it mail)"),
        ("mynetworks_style", "is set by mailagent (only this host may hand it mail)"),
        ("smtpd_relay_restrictions", "is set by mailagent (only this host may hand it mail)"),
        ("smtpd_recipient_restrictions", "is set by mailagent (only this host may hand it mail)"),
        ("smtpd_client_restrictions", "is set by mailagent (only this host may hand it mail)"),
        ("relayhost", "is set by mailagent (all mail goes to the smarthost); use provider, host and port"),
        ("smtp_fallback_relay", "is set by mailagent (all mail goes to the smarthost); use fallback_relays"),
        ("default_transport", "is set by mailagent (all mail goes to the smarthost); use provider, host and port"),
        ("relay_transport", "is set by mailagent (all mail goes to the smarthost); use provider, host and port"),
        ("transport_maps", "is set by mailagent (all mail goes to the smarthost); use provider, host and port"),
        ("sender_dependent_relayhost_maps", "is set by mailagent (all mail goes to the smarthost); use sender_routes"),
        ("smtp_tls_security_level", "is set by mailagent (TLS to the smarthost is always required); use tls_verify"),
        ("smtp_tls_wrappermode", "is set by mailagent (TLS to the smarthost is always required); use tls (or a port that implies it)"),
        ("smtp_tls_mandatory_protocols", "is set by mailagent (TLS to the smarthost is always required at version 1.2 or later)"),
        ("smtp_tls_protocols", "is set by mailagent (TLS to the smarthost is always required at version 1.2 or later)"),
        ("smtp_sasl_security_options", "is set by mailagent (SASL follows the credentials); use username, password and sasl_mechanisms"),
        ("smtp_sasl_auth_enable", "is set by mailagent (SASL follows the credentials); use username, password and sasl_mechanisms"),
        ("mydestination", "is set by mailagent (a null client delivers nothing locally); use forward_root_to"),
        ("local_transport", "is set by mailagent (a null client delivers nothing locally); use forward_root_to"),
        ("smtp_use_tls", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use the matching *_tls_security_level (for the smarthost: tls_verify)"),
        ("smtp_enforce_tls", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use the matching *_tls_security_level (for the smarthost: tls_verify)"),
        ("smtpd_use_tls", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use the matching *_tls_security_level (for the smarthost: tls_verify)"),
        ("smtpd_enforce_tls", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use the matching *_tls_security_level (for the smarthost: tls_verify)"),
        ("smtp_tls_per_site", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use the matching *_tls_policy_maps"),
        ("disable_dns_lookups", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use smtp_dns_support_level"),
        ("smtpd_tls_dh1024_param_file", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use nothing (leave the default)"),
        ("smtpd_tls_eecdh_grade", "obsolete since Postfix 3.9 (whose postconf warns that it will be removed); use nothing (leave the default)"),
        ("smtp_tls_cipherlist", "no longer a Postfix parameter (unknown to 3.5 and later); use the matching *_tls_mandatory_ciphers and *_tls_exclude_ciphers"),
        ("smtpd_tls_cipherlist", "no longer a Postfix parameter (unknown to 3.5 and later); use the matching *_tls_mandatory_ciphers and *_tls_exclude_ciphers"),
    ],
)
def test_extra_main_cf_refuses_guarded_and_obsolete_keys(key, expected):
    assert f"relay.extra_main_cf.{key}: {expected}" in problems(dict(SES, extra_main_cf={key: "x"}))


def test_extra_main_cf_refuses_comments_and_line_breaks_and_reports_all_at_once():
    found = problems(dict(SES, extra_main_cf={"smtp_tls_loglevel": "1 # verbose",
                                              "smtp_helo_name": "a\nb", "relayhost": "[x]:25"}))
    assert found == [
        "relay.extra_main_cf.smtp_tls_loglevel: contains '#' (Postfix 3.10 warns about a comment after a value)",
        "relay.extra_main_cf.smtp_helo_name: must be one line",
        "relay.extra_main_cf.relayhost: is set by mailagent (all mail goes to the smarthost); use provider, host and port",
    ]


def test_extra_main_cf_accepts_an_ordinary_parameter():
    profile = parse_profile(dict(SES, extra_main_cf={"smtp_helo_name": "web1.example.com"}), environ={})
    assert profile.extra_main_cf == {"smtp_helo_name": "web1.example.com"}
