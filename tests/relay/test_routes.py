"""sender_routes: validated by the main relay's own rules, rendered into maps and transports."""

from __future__ import annotations

import pytest

from mailagent.relay.parse import parse_profile
from mailagent.relay.profile import ProfileError
from mailagent.relay.render import render
from mailagent.relay.target import Target
from mailagent.relay.routes import sender_key

MAIN = {"provider": "custom", "host": "smtp.main.example", "port": 2525, "username": "main",
        "password": "pw-main"}
STARTTLS_ROUTE = {"senders": ["a.example", "ops@c.example"], "host": "smtp.a.example", "port": 2587,
                  "username": "user-a", "password": "pw-a"}
IMPLICIT_ROUTE = {"senders": ["B.example"], "provider": "sendgrid", "port": 465, "password": "pw-b",
                  "tls_verify": "secure", "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}


def routed(*routes, **main) -> dict:
    return {**MAIN, **main, "sender_routes": list(routes)}


def problems(data: dict, environ=None) -> list[str]:
    with pytest.raises(ProfileError) as raised:
        parse_profile(data, environ=environ or {})
    return raised.value.problems


def rendered(data: dict, environ=None) -> dict[str, str]:
    return render(parse_profile(data, environ=environ or {}), Target(hostname="web1"))


@pytest.mark.parametrize("value, key", [
    ("example.com", "@example.com"), ("@Example.COM", "@example.com"),
    ("Alerts@example.com", "alerts@example.com"), ("example", None), ("a b@example.com", None), ("a#b@example.com", None),
    ("alerts@", None), ("", None),
])
def test_sender_key(value, key):
    assert sender_key(value) == key


def test_a_route_is_completed_like_the_main_relay():
    route = parse_profile(routed(IMPLICIT_ROUTE), environ={}).sender_routes[0]
    assert route.senders == ["@b.example"]
    assert (route.relay.host, route.relay.port, route.relay.tls, route.relay.username) == (
        "smtp.sendgrid.net", 465, "implicit", "apikey")


def test_a_route_password_can_come_from_the_environment():
    route = dict(STARTTLS_ROUTE, password=None, password_env="ROUTE_A_PW")
    del route["password"]
    profile = parse_profile(routed(route), environ={"ROUTE_A_PW": "from-env"})
    assert profile.sender_routes[0].relay.secret() == "from-env"


@pytest.mark.parametrize("route, expected", [
    (dict(STARTTLS_ROUTE, port=2465, tls="starttls"),
     "relay.sender_routes[0].tls: starttls contradicts port 2465, which speaks implicit TLS"),
    (dict(IMPLICIT_ROUTE, port=2465),
     "relay.sender_routes[0].port: 2465 is not a port sendgrid offers (STARTTLS: 25, 587, 2525; implicit TLS: 465)"),
    (dict(STARTTLS_ROUTE, port=25),
     "relay.sender_routes[0].port: 25 is blocked or throttled on most cloud networks; use 587, 2525, 2587 or 2465, or set allow_port_25: true"),
    (dict(STARTTLS_ROUTE, host=None), "relay.sender_routes[0].host: required for provider custom"),
    (dict(STARTTLS_ROUTE, port=70000), "relay.sender_routes[0].port: Input should be less than or equal to 65535"),
    (dict(STARTTLS_ROUTE, username="a:b"),
     "relay.sender_routes[0].username: must not contain ':' (Postfix splits user and password at the first ':')"),
    (dict(STARTTLS_ROUTE, password_env="NOPE"), "relay.sender_routes[0].password_env: give either password or password_env, not both"),
    (dict(STARTTLS_ROUTE, tls_verify="maybe"),
     "relay.sender_routes[0].tls_verify: 'maybe' is not allowed; input should be 'encrypt', 'verify' or 'secure'"),
    (dict(STARTTLS_ROUTE, queue_lifetime="1d"),
     "relay.sender_routes[0].queue_lifetime: not a route setting; a route takes senders and its smarthost's "
     "provider, region, host, port, tls, tls_verify, ca_file, ca_pem, username, password, password_env, allow_port_25"),
    (dict(STARTTLS_ROUTE, provider="hub"), "relay.sender_routes[0].provider: hub is for the main relay only "
     "(its login is derived for it); route these senders with their own smarthost"),
    (dict(STARTTLS_ROUTE, senders=[]), "relay.sender_routes[0].senders: required, a list of domains or addresses "
     "(example.com, alerts@example.com)"),
    (dict(STARTTLS_ROUTE, senders="a.example"), "relay.sender_routes[0].senders: required, a list of domains or "
     "addresses (example.com, alerts@example.com)"),
    (dict(STARTTLS_ROUTE, senders=["not a domain"]), "relay.sender_routes[0].senders[0]: 'not a domain' is neither a "
     "domain nor an address (example.com, alerts@example.com)"),
    (dict(STARTTLS_ROUTE, senders=["a.example", "@A.example"]),
     "relay.sender_routes[0].senders[1]: @a.example is already routed by this route"),
    ("a.example", "relay.sender_routes[0]: expected a mapping (senders and smarthost keys)"),
])
def test_route_problems_name_the_route_and_field(route, expected):
    assert expected in problems(routed(route))


def test_a_sender_in_two_routes_is_refused_naming_both():
    second = dict(IMPLICIT_ROUTE, senders=["b.example", "OPS@c.example"])
    assert problems(routed(STARTTLS_ROUTE, second)) == [
        "relay.sender_routes[1].senders[1]: ops@c.example is already routed by sender_routes[0]"]


def test_every_problem_at_once_main_relay_first():
    bad_main = routed(dict(STARTTLS_ROUTE, port=2465, tls="starttls"), dict(IMPLICIT_ROUTE, port=2465), port=25)
    found = problems(bad_main)
    assert found[0].startswith("relay.port: 25 is blocked")
    assert [line.split(":")[0] for line in found[1:]] == ["relay.sender_routes[0].tls", "relay.sender_routes[1].port"]


def test_sender_routes_must_be_a_list():
    assert problems(routed() | {"sender_routes": {"a.example": "x"}}) == [
        "relay.sender_routes: expected a list of routes, got dict"]


def test_the_route_rules_are_the_main_relay_rules():
    """The same message for the same mistake, only the prefix differs."""
    mistake = {"host": "smtp.x.example", "port": 2587, "tls": "implicit", "username": "u", "password": "p"}
    main = problems(mistake)
    route = problems(routed(dict(mistake, senders=["x.example"])))
    assert [line.replace("relay.sender_routes[0].", "relay.") for line in route] == main


def test_without_routes_nothing_changes():
    files = rendered(MAIN)
    assert not {"sender_relay", "sender_transport", "master.cf.routes"} & set(files)
    assert "sender_dependent" not in files["main.cf"]


def test_both_tls_modes_side_by_side():
    files = rendered(routed(STARTTLS_ROUTE, IMPLICIT_ROUTE))
    assert files["sender_relay"] == ("@a.example [smtp.a.example]:2587\n@b.example [smtp.sendgrid.net]:465\n"
                                     "ops@c.example [smtp.a.example]:2587\n")
    assert files["sender_transport"] == "@a.example route0\n@b.example route1\nops@c.example route0\n"
    assert files["master.cf.routes"] == (
        "route0  unix  -       -       -       -       -       smtp\n"
        "  -o smtp_tls_wrappermode=no\n"
        "  -o smtp_tls_security_level=verify\n"
        "  -o smtp_tls_CAfile=/etc/ssl/certs/ca-certificates.crt\n"
        "route1  unix  -       -       -       -       -       smtp\n"
        "  -o smtp_tls_wrappermode=yes\n"
        "  -o smtp_tls_security_level=secure\n"
        "  -o smtp_tls_CAfile=/etc/postfix/route1-ca.pem\n"
        "  -o smtp_tls_connection_reuse=no\n")  # tlsproxy, chrooted, could not read route1-ca.pem
    assert files["route1-ca.pem"].startswith("-----BEGIN CERTIFICATE-----")
    main_cf = files["main.cf"]
    for line in ("relayhost = [smtp.main.example]:2525", "smtp_tls_wrappermode = no",
                 "sender_dependent_relayhost_maps = ${default_database_type}:/etc/postfix/sender_relay",
                 "sender_dependent_default_transport_maps = ${default_database_type}:/etc/postfix/sender_transport",
                 "smtp_sender_dependent_authentication = yes", "route0_destination_concurrency_limit = 20",
                 "smtp_sasl_password_maps = ${default_database_type}:/etc/postfix/sasl_passwd"):
        assert line in main_cf.splitlines()


def test_sasl_map_holds_the_default_relay_by_next_hop_and_the_routes_by_sender():
    files = rendered(routed(STARTTLS_ROUTE, IMPLICIT_ROUTE))
    assert files["sasl_passwd"].splitlines() == [
        "[smtp.main.example]:2525 main:pw-main", "@a.example user-a:pw-a", "@b.example apikey:pw-b",
        "ops@c.example user-a:pw-a"]
    for name, content in files.items():
        if name != "sasl_passwd":
            assert not {"pw-main", "pw-a", "pw-b"} & set(content.split()) and "pw-a" not in content, name


def test_routes_with_logins_turn_sasl_on_when_the_main_relay_has_none():
    main_cf = rendered({"provider": "custom", "host": "relay.internal.example", "port": 2587,
                        "sender_routes": [STARTTLS_ROUTE]})["main.cf"]
    assert "smtp_sasl_auth_enable = yes" in main_cf
    assert "smtp_sender_dependent_authentication = yes" in main_cf


def test_a_route_s_preset_concurrency_limits_its_transport():
    office = {"senders": ["o.example"], "provider": "office365", "username": "me@o.example", "password": "x"}
    main_cf = rendered(routed(office))["main.cf"]
    assert "route0_destination_concurrency_limit = 3" in main_cf.splitlines()


def test_extra_main_cf_cannot_route_by_sender():
    for key in ("sender_dependent_default_transport_maps", "smtp_sender_dependent_authentication"):
        assert any(line.startswith(f"relay.extra_main_cf.{key}: is set by mailagent") and
                   line.endswith("use sender_routes") for line in problems(dict(MAIN, extra_main_cf={key: "x"})))
