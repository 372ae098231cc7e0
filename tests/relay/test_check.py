"""The relay check (what the deploy and `mailagent check-relay` run) against the real lab sink."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mailagent.lab import sink
from mailagent.relay.check import check_relay, format_result, hint_for, main, read_credentials

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def smarthost(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sink")
    info = sink.spawn(folder, starttls_ports=(0,), implicit_ports=(0,))
    yield folder, info
    sink.stop(folder)


def run(info, kind: str, **overrides) -> dict:
    port = info["ports"][kind][0]
    arguments = dict(host="127.0.0.1", port=port, tls=kind, username=info["username"],
                     password=info["password"], ca_file=info["ca_cert"], timeout=10, verify="verify")
    return check_relay(**{**arguments, **overrides})


@pytest.mark.parametrize("kind", ["starttls", "implicit"])
def test_accepting_smarthost_passes_every_step(smarthost, kind):
    result = run(smarthost[1], kind)
    assert result["ok"], result
    steps = [s["step"] for s in result["steps"]]
    assert steps == (["connect", "ehlo", "starttls", "auth", "quit"] if kind == "starttls"
                     else ["connect", "ehlo", "auth", "quit"])
    assert "ok:" in format_result(result)


def test_wrong_password_gives_535_and_the_hint(smarthost):
    result = run(smarthost[1], "starttls", password="wrong")
    assert (result["ok"], result["step"], result["code"]) == (False, "auth", 535)
    assert result["hint"].startswith("wrong credentials")
    assert "hint: wrong credentials" in format_result(result)


def test_provider_hint_wins_over_the_general_one(smarthost):
    result = run(smarthost[1], "implicit", password="wrong", hints={"535": "SendGrid: use apikey"})
    assert result["hint"] == "SendGrid: use apikey"


def test_certificate_for_another_name_fails_before_auth(smarthost):
    folder, info = smarthost
    before = len(sink.auth_attempts(folder))
    result = run(info, "starttls", host="localhost")
    assert (result["ok"], result["step"]) == (False, "starttls")
    assert "certificate" in result["hint"]
    assert len(sink.auth_attempts(folder)) == before


def test_untrusted_ca_fails_and_encrypt_level_passes(smarthost):
    info = smarthost[1]
    system_bundle = "/etc/ssl/certs/ca-certificates.crt"
    assert run(info, "implicit", ca_file=system_bundle)["step"] == "connect"
    assert run(info, "implicit", ca_file=None, verify="encrypt")["ok"]


def test_nothing_listening_gives_refused_hint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = check_relay("127.0.0.1", port, "starttls", timeout=5)
    assert (result["ok"], result["step"]) == (False, "connect")
    assert result["hint"].startswith("connection refused")


def test_hints_for_blocked_ports_and_provider_codes():
    assert "2525, 2587" in hint_for(None, "timed out", 587)
    assert "App Password" in hint_for(534, "5.7.9 Application-specific password required", 587)
    assert "SMTP AUTH" in hint_for(535, "5.7.139 Authentication unsuccessful", 587)


def test_credentials_come_from_the_sasl_map(smarthost, tmp_path, capsys):
    info = smarthost[1]
    port = info["ports"]["starttls"][0]
    sasl = tmp_path / "sasl_passwd"
    sasl.write_text(f"# comment\n[127.0.0.1]:{port} {info['username']}:{info['password']}\n")
    assert read_credentials(str(sasl), f"[127.0.0.1]:{port}") == (info["username"], info["password"])
    code = main(["--host", "127.0.0.1", "--port", str(port), "--tls", "starttls",
                 "--ca-file", info["ca_cert"], "--sasl-map", str(sasl)])
    assert code == 0
    assert info["password"] not in capsys.readouterr().out
    assert main(["--host", "127.0.0.1", "--port", "1", "--tls", "starttls", "--sasl-map",
                 str(sasl)]) == 2


def test_a_sender_route_s_login_is_found_by_its_sender_key(smarthost, tmp_path, capsys):
    lab, info = smarthost
    port = info["ports"]["starttls"][0]
    sasl = tmp_path / "sasl_passwd"
    sasl.write_text(f"[127.0.0.1]:{port} nobody:wrong\n@a.example {info['username']}:{info['password']}\n")
    code = main(["--host", "127.0.0.1", "--port", str(port), "--tls", "starttls", "--ca-file",
                 info["ca_cert"], "--sasl-map", str(sasl), "--sasl-key", "@a.example"])
    assert code == 0 and info["password"] not in capsys.readouterr().out
    assert main(["--host", "127.0.0.1", "--port", str(port), "--tls", "starttls", "--sasl-map",
                 str(sasl), "--sasl-key", "@b.example"]) == 2
    assert "no credentials for @b.example in" in capsys.readouterr().err
