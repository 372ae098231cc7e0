"""relay.json as one model: the renderer writes a RelayTarget, every reader parses one."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mailagent.relay import deployed
from mailagent.relay.deployed import DrainTarget, RelayTarget
from mailagent.relay.parse import parse_profile
from mailagent.relay.render import render
from mailagent.relay.target import Target

HUB_CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def rendered(data: dict) -> str:
    return render(parse_profile(data), Target())["relay.json"]


def test_the_rendered_file_reads_back_as_the_same_target(tmp_path):
    text = rendered({"provider": "sendgrid", "password": "SG.k",
                     "drain_relay": {"host": "hub.example.net", "port": 1465, "ca_pem": HUB_CA}})
    assert text.endswith("}\n") and list(json.loads(text)) == sorted(json.loads(text))
    (tmp_path / "relay.json").write_text(text)
    relay = deployed.read(tmp_path / "relay.json")
    assert relay.to_json() == text
    assert (relay.host, relay.port, relay.relayhost) == ("smtp.sendgrid.net", 587,
                                                         "[smtp.sendgrid.net]:587")
    assert relay.drain == DrainTarget(relay="[hub.example.net]:1465", tls="implicit",
                                      ca_file="/etc/postfix/drain-ca.pem")


def test_every_key_is_written_even_when_unset():
    data = json.loads(rendered({"host": "smtp.example.com", "port": 587, "tls_verify": "encrypt"}))
    assert set(data) == {"provider", "host", "port", "tls", "tls_verify", "ca_file", "username",
                         "sender_address", "relayhost", "hints", "drain"}
    assert (data["ca_file"], data["drain"], data["username"]) == (None, None, None)


def test_a_missing_file_is_none_and_a_bad_one_says_which_file_and_key(tmp_path):
    path = tmp_path / "relay.json"
    assert deployed.read(path) is None
    path.write_text('{"host": "smtp.example.com"}')
    with pytest.raises(deployed.RelayTargetError, match=f"{path}: port: Field required"):
        deployed.read(path)
    path.write_text("{not json")
    with pytest.raises(deployed.RelayTargetError, match=str(path)):
        deployed.read(path)


def test_keys_a_newer_deploy_adds_are_ignored(tmp_path):
    path = tmp_path / "relay.json"
    path.write_text(json.dumps({"host": "h.example", "port": 25, "added_later": 1}))
    assert deployed.read(path) == RelayTarget(host="h.example", port=25)


@pytest.mark.parametrize("field,value", [("relay", "hub.example.net:1587"), ("relay", "[hub]:0"),
                                         ("tls", "tls"), ("ca_file", "ca.pem")])
def test_a_drain_target_is_validated_in_one_place(field, value):
    with pytest.raises(ValidationError, match=field):
        DrainTarget(**{field: value})


def test_check_relay_reads_the_target(tmp_path, monkeypatch, capsys):
    from mailagent.cli import main
    from mailagent.relay import check
    path = tmp_path / "relay.json"
    assert main(["check-relay", "--settings", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}: no such file (deploy the relay first)\n"
    path.write_text(rendered({"host": "smtp.example.com", "port": 465, "username": "u",
                              "password": "p"}))
    seen = []
    monkeypatch.setattr(check, "main", lambda argv: seen.append(argv) or 0)
    assert main(["check-relay", "--settings", str(path), "--sasl-map", str(path)]) == 0
    assert seen[0][:8] == ["--host", "smtp.example.com", "--port", "465", "--tls", "implicit",
                           "--verify", "verify"]
    assert seen[0][-4:] == ["--ca-file", "/etc/ssl/certs/ca-certificates.crt", "--sasl-map", str(path)]
