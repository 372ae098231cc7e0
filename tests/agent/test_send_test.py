"""send-test's log following on real-format Postfix lines (3.7 syslog, 3.10 RFC 3339 and journal)."""

from __future__ import annotations

import json
import sys

import pytest

from mailagent.agent import send_test
from mailagent.agent.logsource import JournalSource
from mailagent.agent.maillog import parse_syslog_line
from mailagent.cli import main
from mailagent.relay.check import HINTS
from mailagent.relay.deployed import RelayTarget

AUTH = "<179612846573.2020.17881230123745140103.mailagent-send-test@relay1>"  # Debian 13 lab lines
TEMP = "<179612847267.2007.15164335071851568002.mailagent-send-test@relay2>"
RELAY = RelayTarget(host="smtp.example.com", port=2587, username="apikey", hints={})


def follow(fixtures, message_id: str) -> send_test.Trail:
    trail = send_test.Trail(message_id)
    for line in (fixtures / "send-test.log").read_text().splitlines():
        if (record := parse_syslog_line(line)) is not None:
            trail.add(record)
    return trail


def finish(trail: send_test.Trail, relay=RELAY) -> dict:
    return send_test.result(trail, relay, sender="root@web1", to="ops@example.net", elapsed=1.5,
                            timeout=60)


def hint(needle: str) -> str:
    return dict(HINTS)[needle]


def test_delivered_with_the_smarthost_reply_and_the_tls_of_its_own_connection(fixtures):
    trail = follow(fixtures, "<delivered.1@web1.example.org>")
    result = finish(trail)
    assert (result["result"], result["queue_id"]) == ("delivered", "4B1C12A0F3")
    assert result["reply"] == "250 2.0.0 Ok: queued as 7D2F1C0042"
    assert (result["code"], result["dsn"], result["smarthost_queue_id"]) == (250, "2.0.0", "7D2F1C0042")
    assert result["relay"] == "smtp.example.com[192.0.2.10]:2587"
    # The TLS line of the smtp process that delivered it, not the other connection's.
    assert (result["tls"]["trust"], result["tls"]["protocol"]) == ("Verified", "TLSv1.3")
    assert result["tls"]["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert result["hint"] == "" and result["reason_class"] is None
    # From cleanup's line on (pickup's comes before the Message-ID names the queue id); the TLS
    # summary of the delivering process just before its status line.
    assert [line.split(": ")[1][:8] for line in trail.lines] == [
        "4B1C12A0", "4B1C12A0", "Verified", "4B1C12A0"]
    assert send_test.summary(result) == ("delivered: 250 2.0.0 Ok: queued as 7D2F1C0042 "
                                         "(Verified TLS TLSv1.3, AUTH apikey)")


@pytest.mark.parametrize("message_id,result,code,reason_class,needle", [
    (AUTH, "deferred", 535, "auth_failed", "535"),                 # Postfix 3.10
    (TEMP, "deferred", 451, "throttled", "451"),              # Postfix 3.10
    ("<bounced.5@web1.example.org>", "bounced", 550, "rejected", None),        # Postfix 3.7
])
def test_deferred_and_bounced_with_code_and_the_check_relay_hint(fixtures, message_id, result, code,
                                                                 reason_class, needle):
    found = finish(follow(fixtures, message_id))
    assert (found["result"], found["code"], found["reason_class"]) == (result, code, reason_class)
    assert found["reply"].startswith(str(code))
    assert found["hint"] == (hint(needle) if needle else "")


def test_reply_of_the_sasl_failure_is_the_smarthosts_own_words(fixtures):
    found = finish(follow(fixtures, AUTH))
    assert found["reply"] == "535 5.7.8 Authentication credentials invalid"
    assert "; hint: wrong credentials" in send_test.summary(found)


def test_debian_13_lab_delivery_names_the_sinks_queue_id(fixtures):
    found = finish(follow(fixtures, "<179612845932.2001.8782856024593921141.mailagent-send-test@relay1>"))
    assert (found["result"], found["queue_id"], found["smarthost_queue_id"]) == (
        "delivered", "155554873", "A06604F04F17")
    assert found["relay"] == "sink.lab.mailagent.test[10.0.2.2]:2587"


def test_a_reused_tls_connection_is_the_deliverys_tls(fixtures):
    trail = follow(fixtures, "<7efe991e-ours-1.50@bench.lab.mailagent.test>")
    found = finish(trail)
    assert (found["result"], found["smarthost_queue_id"]) == ("delivered", "9EC5F5FD0E1A")
    assert found["tls"]["line"].startswith("Verified TLS connection reused to sink.lab.mailagent.test")
    assert "TLS connection reused" in trail.lines[-2]  # shown in the log, before the status line


def test_suspended_destination_gets_the_connection_hint(fixtures):
    found = finish(follow(fixtures, "<suspended.4@web1.example.org>"))
    assert (found["result"], found["code"], found["relay"]) == ("deferred", None, "none")
    assert found["hint"].startswith("connection refused")


def test_expired_is_bounced(fixtures):
    found = finish(follow(fixtures, "<expired.6@web1.example.org>"))
    assert (found["result"], found["reply"]) == ("bounced", "expired: returned to sender")


def test_provider_hints_from_relay_json_come_first(fixtures):
    hints = {"535 5.7.8": "SendGrid: the API key is wrong or lacks Mail Send"}
    relay = RELAY.model_copy(update={"hints": hints})
    found = finish(follow(fixtures, AUTH), relay)
    assert found["hint"] == "SendGrid: the API key is wrong or lacks Mail Send"


def test_a_message_not_in_the_log_times_out_saying_so(fixtures):
    found = finish(follow(fixtures, "<never@web1>"))
    assert (found["result"], found["queue_id"], found["last_seen"]) == ("timeout", None, "")
    assert "nothing logged about <never@web1>" in send_test.summary(found)


class Fed:
    """A log source whose lines appear as the submitted message makes its way."""

    def __init__(self):
        self.pending, self.reads = [], 0

    def read(self):
        self.reads += 1
        records, self.pending = [parse_syslog_line(line) for line in self.pending], []
        return records, {"n": self.reads}

    def commit(self, position):
        pass


def message_id_of(text: str) -> str:
    return next(line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("Message-ID:"))


def test_run_follows_to_the_status_line():
    def submit(sender, to, text):
        mid = message_id_of(text)
        source.pending = [f"Dec  1 11:00:01 h postfix/cleanup[1]: ABC123: message-id={mid}",
                          f"Dec  1 11:00:01 h postfix/qmgr[2]: ABC123: from=<{sender}>, size=1, nrcpt=1 (queue active)"]
        submitted.append((sender, to, mid))

    source, submitted = Fed(), []
    found = send_test.run(source, submit, "a@h.example", "b@example.net", "h.example", 5, RELAY,
                          sleep=lambda s: source.pending.append(
                              "Dec  1 11:00:02 h postfix/smtp[3]: ABC123: to=<b@example.net>, "
                              "relay=r[192.0.2.1]:2525, dsn=2.0.0, status=sent (250 Ok)"))
    assert submitted[0][:2] == ("a@h.example", "b@example.net")
    assert (found["result"], found["queue_id"], found["message_id"]) == ("delivered", "ABC123", submitted[0][2])
    assert found["tls"] is None and "no TLS logged" in send_test.summary(found)


def test_run_times_out_with_the_last_line_seen():
    ticks = iter(range(0, 100, 10))

    def submit(sender, to, text):
        source.pending = [f"Dec  1 11:00:01 h postfix/cleanup[1]: Q1: message-id={message_id_of(text)}"]

    source = Fed()
    found = send_test.run(source, submit, "a@h", "b@example.net", "h", 25, RELAY,
                          clock=lambda: next(ticks), sleep=lambda s: None)
    assert (found["result"], found["queue_id"]) == ("timeout", "Q1")
    assert send_test.summary(found).startswith("timeout after 25 s; last seen: postfix/cleanup[1]: Q1:")


def test_run_reads_the_journal_the_way_the_agent_does(tmp_path):
    """JournalSource with a stand-in journalctl that prints what "Postfix" logged as JSON."""
    log = tmp_path / "journal.jsonl"
    log.write_text("")
    fake = tmp_path / "journalctl"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(log)!r}).read())\n")
    fake.chmod(0o755)
    source = JournalSource(tmp_path / "position.json", command=(str(fake),))

    def submit(sender, to, text):
        mid = message_id_of(text)
        entries = [("postfix/cleanup", f"5sZ9Qk0vXz3mQ1a: message-id={mid}"),
                   ("postfix/smtp", "Verified TLS connection established to sink[10.0.2.2]:2465: "
                    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"),
                   ("postfix/smtp", "5sZ9Qk0vXz3mQ1a: to=<b@example.net>, relay=sink[10.0.2.2]:2465, "
                    "delay=0.3, delays=0/0/0.2/0.1, dsn=2.0.0, status=sent (250 2.0.0 OK queued as 0A1B)")]
        log.write_text("".join(json.dumps({"__CURSOR": f"c{n}", "SYSLOG_IDENTIFIER": prog, "_PID": "7",
                                           "MESSAGE": msg}) + "\n" for n, (prog, msg) in enumerate(entries)))

    found = send_test.run(source, submit, "a@h", "b@example.net", "h", 10, RELAY, sleep=lambda s: None)
    assert (found["result"], found["smarthost_queue_id"], found["tls"]["protocol"]) == (
        "delivered", "0A1B", "TLSv1.3")


@pytest.mark.parametrize("argv,problem", [
    (["--to", "not-an-address"], "--to: 'not-an-address' is not an address"),
    (["--to", "a@example.net", "--from", "x y@h"], "--from: 'x y@h' is not an address"),
    (["--to", "a@example.net", "--timeout", "0"], "--timeout: must be more than 0"),
])
def test_bad_usage_exits_2_with_one_line_per_problem(argv, problem, capsys, tmp_path):
    assert main(["send-test", "--settings", str(tmp_path / "none.toml"), *argv]) == 2
    assert problem in capsys.readouterr().err


def test_missing_to_is_bad_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["send-test"])
    assert exc.value.code == 2
