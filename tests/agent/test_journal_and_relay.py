"""The journal log source (cursor kept on disk) and relay_reach with the relay's real check."""

from __future__ import annotations

import json
import socket

import pytest

from mailagent.agent.checks.relay_reach import Check as RelayReach, NotConfigured
from mailagent.agent.logsource import JournalSource

ENTRIES = [
    {"__CURSOR": "s=1;i=1", "SYSLOG_IDENTIFIER": "postfix/smtp", "_PID": "10",
     "MESSAGE": "A1B2C3: to=<a@b>, relay=s[1.2.3.4]:2587, dsn=2.0.0, status=sent (250 ok)"},
    {"__CURSOR": "s=1;i=2", "SYSLOG_IDENTIFIER": "dovecot", "MESSAGE": "not ours"},
    {"__CURSOR": "s=1;i=3", "SYSLOG_IDENTIFIER": "postfix-hub/error", "_PID": "11",
     "MESSAGE": "D4E5F6: to=<c@d>, relay=none, dsn=4.4.1, status=deferred (delivery temporarily suspended)"},
]


@pytest.fixture()
def fake_journalctl(tmp_path):
    """A journalctl stand-in that logs its arguments and prints the entries after the cursor."""
    script = tmp_path / "journalctl"
    script.write_text(f"""#!/usr/bin/env python3
import json, sys
open({str(tmp_path / 'args.log')!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')
entries = json.load(open({str(tmp_path / 'entries.json')!r}))
after = next((a.split('=', 1)[1] for a in sys.argv if a.startswith('--after-cursor=')), None)
start = next((i + 1 for i, e in enumerate(entries) if e['__CURSOR'] == after), 0)
for entry in entries[start:]:
    print(json.dumps(entry))
""")
    script.chmod(0o755)
    (tmp_path / "entries.json").write_text(json.dumps(ENTRIES))
    return script


def test_journal_starts_now_then_follows_the_cursor(tmp_path, fake_journalctl):
    source = JournalSource(tmp_path / "pos.json", command=(str(fake_journalctl),))
    records, position = source.read()
    assert records == [] and "since" in position
    source.commit(position)
    records, position = source.read()
    assert [r.daemon for r in records] == ["smtp", "error"]
    assert position == {"cursor": "s=1;i=3"}
    args = (tmp_path / "args.log").read_text().splitlines()
    assert "SYSLOG_FACILITY=2" in args[0] and "--since=@" in args[0]
    source.commit(position)
    assert source.read()[0] == []  # nothing after the cursor
    assert "--after-cursor=s=1;i=3" in (tmp_path / "args.log").read_text().splitlines()[-1]


def test_journal_read_not_committed_is_read_again(tmp_path, fake_journalctl):
    (tmp_path / "pos.json").write_text(json.dumps({"cursor": "s=1;i=1"}))
    source = JournalSource(tmp_path / "pos.json", command=(str(fake_journalctl),))
    assert len(source.read()[0]) == 1
    assert len(source.read()[0]) == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_relay_reach_reports_refused_with_a_hint(settings):
    settings.relay_settings_path.write_text(json.dumps(
        {"host": "127.0.0.1", "port": closed_port(), "tls": "starttls", "tls_verify": "encrypt",
         "username": None, "relayhost": "[127.0.0.1]:1", "hints": {}}))
    section = RelayReach(settings).run(1_800_000_000)
    assert section.reachable is False and section.code is None
    assert "refused" in section.hint
    assert section.checked_at.timestamp() == 1_800_000_000


def test_relay_reach_passes_credentials_from_the_sasl_map(settings, tmp_path):
    settings = settings.model_copy(update={"sasl_map": tmp_path / "sasl_passwd"})
    (tmp_path / "sasl_passwd").write_text("[smtp.example.com]:2587 apikey:s3cret\n")
    settings.relay_settings_path.write_text(json.dumps(
        {"host": "smtp.example.com", "port": 2587, "tls": "starttls", "tls_verify": "verify",
         "ca_file": "/etc/ssl/certs/ca-certificates.crt", "username": "apikey", "hints": {}}))
    calls = []

    def check_relay(*args):
        calls.append(args)
        return {"ok": True, "step": "quit", "code": 235, "hint": ""}

    section = RelayReach(settings, check_relay=check_relay).run(0)
    assert section.reachable and section.hint is None
    assert calls[0][:5] == ("smtp.example.com", 2587, "starttls", "apikey", "s3cret")


def test_relay_reach_without_relay_settings_fails_as_data(settings):
    with pytest.raises(NotConfigured):
        RelayReach(settings).run(0)


def test_relay_reach_without_read_access_to_the_sasl_map_checks_up_to_tls(settings, tmp_path, monkeypatch):
    """The agent has no right to root's 0600 map: it checks connect, EHLO and TLS, not AUTH."""
    settings = settings.model_copy(update={"sasl_map": tmp_path / "sasl_passwd"})
    (tmp_path / "sasl_passwd").write_text("[smtp.example.com]:2587 apikey:s3cret\n")
    settings.relay_settings_path.write_text(json.dumps(
        {"host": "smtp.example.com", "port": 2587, "tls": "starttls", "tls_verify": "verify",
         "ca_file": "/etc/ssl/certs/ca-certificates.crt", "username": "apikey", "hints": {}}))
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if str(path) == str(tmp_path / "sasl_passwd"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    calls = []
    section = RelayReach(settings, check_relay=lambda *a: calls.append(a) or
                         {"ok": True, "step": "quit", "code": 221, "hint": ""}).run(0)
    assert section.reachable
    assert calls[0][:5] == ("smtp.example.com", 2587, "starttls", None, None)
