"""`mailagent drain` against a real private Postfix whose smarthost is down, handing its queue to
a real TLS+AUTH SMTP server on loopback (standing in for the hub)."""

from __future__ import annotations

import io
import json
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from mailagent import pki, signing
from mailagent.agent.queue_scan import count_queues
from mailagent.cli import main
from tests.agent.postfix_instance import PostfixInstance
from tests.collector.pgserver import free_port

USER, PASSWORD = "web1.example.org", "hub-secret-for-tests"
SASL = ("smtp_sasl_auth_enable = yes\n"
        "smtp_sasl_password_maps = texthash:{etc}/sasl_passwd\n"
        "smtp_sasl_security_options = noanonymous, noplaintext\n"
        "smtp_sasl_tls_security_options = noanonymous\n")


class Hub:
    """aiosmtpd with STARTTLS (or implicit TLS) and AUTH required; keeps what it received."""

    def __init__(self, folder: Path, tls: str):
        pki.create_ca(folder / "ca", "drain test CA")
        cert, key = pki.issue_server_cert(folder / "ca", ["localhost"], ["127.0.0.1"], folder / "srv")
        self.ca_file, self.tls = str(folder / "ca" / "ca.pem"), tls
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.messages: list[tuple[bool, list[str], bytes]] = []
        self.lock = threading.Lock()
        self.port = free_port()
        tls_args = ({"ssl_context": ctx} if tls == "implicit" else
                    {"tls_context": ctx, "require_starttls": True})
        # Under implicit TLS aiosmtpd cannot see the TLS layer and would hide AUTH.
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                     authenticator=self._auth, auth_required=True,
                                     auth_require_tls=tls == "starttls", **tls_args)
        self.controller.start()

    @staticmethod
    def _auth(server, session, envelope, mechanism, data) -> AuthResult:
        return AuthResult(success=(data.login, data.password) == (USER.encode(), PASSWORD.encode()))

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("refused"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((bool(session.authenticated), envelope.rcpt_tos, envelope.content))
        return "250 2.0.0 queued at the hub"

    def markers(self) -> list[str]:
        return sorted(line.split(b":", 1)[1].strip().decode() for _, _, content in self.messages
                      for line in content.splitlines() if line.startswith(b"X-Test-Marker:"))

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def make_postfix(request):
    def make(relay_port: int) -> PostfixInstance:
        # Not under tmp_path: that is 0700 root, and Postfix daemons run as `postfix`.
        root = Path(tempfile.mkdtemp(prefix="mailagent-drain-"))
        root.chmod(0o755)
        instance = PostfixInstance(root, smtpd_port=free_port(), resolve_names=True,
                                   extra=SASL.format(etc=root / "etc"))
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "sasl_passwd").write_text(f"[localhost]:{relay_port} {USER}:{PASSWORD}\n")

        def cleanup():
            instance.stop()
            shutil.rmtree(root, ignore_errors=True)
        request.addfinalizer(cleanup)
        return instance.start()
    return make


@pytest.fixture
def hub(tmp_path, request):
    made = Hub(tmp_path / "hub", getattr(request, "param", "starttls"))
    yield made
    made.stop()


def queue(postfix: PostfixInstance, n: int) -> list[str]:
    markers = [f"m{i}" for i in range(n)]
    for i, marker in enumerate(markers):
        rcpts = [f"user{i}@example.net"] + ([f"other{i}@example.org"] if i % 2 else [])
        body = f"X-Test-Marker: {marker}\nSubject: drain test {marker}\n\nhello\n"
        subprocess.run(["sendmail", "-C", str(postfix.etc), "-f", "app@example.org", *rcpts],
                       input=body, text=True, check=True)
    postfix.wait_deferred(n)
    return markers


def settings_file(tmp_path: Path, postfix: PostfixInstance, **extra) -> str:
    data = {"host": USER, "postfix_config_dir": str(postfix.etc), "log_source": str(postfix.maillog),
            "state_dir": str(tmp_path / "st"),
            "spool_dir": str(tmp_path / "st" / "spool"), "key_path": str(tmp_path / "agent.key"),
            **extra}
    path = tmp_path / "agent.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in data.items()))
    return str(path)


def queued(postfix: PostfixInstance) -> int:
    return sum(count_queues(postfix.spool).model_dump().values())


def assert_refuses_new_mail(postfix: PostfixInstance) -> None:
    sent = subprocess.run(["sendmail", "-C", str(postfix.etc), "-f", "app@example.org",
                           "late@example.net"], input="Subject: late\n\nx\n", text=True,
                          capture_output=True)
    assert sent.returncode == 75, sent.stderr  # EX_TEMPFAIL: the application retries
    with smtplib.SMTP("127.0.0.1", postfix.smtpd_port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("app@example.org")
        code, text = smtp.rcpt("late@example.net")
    assert code == 450 and b"drained" in text


@pytest.mark.timeout(240)
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("hub", ["starttls", "implicit"], indirect=True)
def test_drain_hands_the_queue_to_the_relay_exactly_once(make_postfix, hub, tmp_path, capsys):
    postfix = make_postfix(hub.port)
    markers = queue(postfix, 5)
    path = settings_file(tmp_path, postfix, drain_relay=f"[localhost]:{hub.port}",
                         drain_tls=hub.tls,
                         drain_ca_file=hub.ca_file)
    code = main(["drain", "--settings", path, "--timeout", "2", "--handover-timeout", "90"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert hub.markers() == markers  # every message once, none twice
    assert all(authenticated for authenticated, _, _ in hub.messages)
    assert queued(postfix) == 0
    assert f"handed over ([localhost]:{hub.port}): 5 message(s), recipients: 7 sent" in out
    assert "sent via the smarthost ([127.0.0.1]:9): 0 message(s), recipients: 0 sent" in out
    assert "re-run the deploy to undo" in out and "collector: not configured" in out
    assert_refuses_new_mail(postfix)
    assert queued(postfix) == 0


@pytest.mark.timeout(240)
def test_a_bounce_at_the_relay_is_reported_not_counted_as_handed_over(make_postfix, hub, tmp_path,
                                                                       capsys):
    postfix = make_postfix(hub.port)
    queue(postfix, 1)
    postfix.send(["refused@example.net"])
    postfix.wait_deferred(2)
    path = settings_file(tmp_path, postfix, drain_relay=f"[localhost]:{hub.port}",
                         drain_ca_file=hub.ca_file)
    assert main(["drain", "--settings", path, "--timeout", "1", "--json"]) == 0
    phase = json.loads(capsys.readouterr().out)["phases"][1]
    assert phase["recipients"]["bounced"] == 1 and phase["recipients"]["sent"] >= 1
    # The bounce notice went to the sender through the hub as well: nothing is left here.
    assert queued(postfix) == 0 and "m0" in hub.markers()


@pytest.mark.timeout(240)
def test_handover_target_down_exits_1_and_keeps_every_message(make_postfix, tmp_path, capsys):
    dead = free_port()  # nothing listens there
    postfix = make_postfix(dead)
    queue(postfix, 3)
    held = postfix.postqueue_json()[0]["queue_id"]
    postfix.hold(held)
    path = settings_file(tmp_path, postfix, drain_relay=f"[localhost]:{dead}")
    code = main(["drain", "--settings", path, "--timeout", "1", "--handover-timeout", "4", "--json"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    summary = json.loads(captured.out)
    assert summary["exit_code"] == 1 and summary["refusing_new_mail"] is True
    assert summary["remaining"]["hold"] == 1 and sum(summary["remaining"].values()) == 3
    assert [p["via"] for p in summary["phases"]] == ["smarthost", "handover"]
    assert any("relayhost:" in c and f"[localhost]:{dead}" in c for c in summary["postfix_changes"])
    assert any(line.startswith("1 on hold") for line in summary["left_behind"])
    assert any("deferred" in line for line in summary["left_behind"])
    assert summary["collector"] is None  # not told: the queue is not empty
    assert queued(postfix) == 3  # nothing deleted, the held message still held
    assert {e["queue_id"]: e["queue_name"] for e in postfix.postqueue_json()}[held] == "hold"
    assert_refuses_new_mail(postfix)


@pytest.mark.timeout(120)
def test_without_drain_relay_mail_stays_and_exit_is_1(make_postfix, tmp_path, capsys):
    postfix = make_postfix(free_port())
    queue(postfix, 1)
    code = main(["drain", "--settings", settings_file(tmp_path, postfix), "--timeout", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "no drain_relay configured" in out and "queue NOT empty" in out
    assert "connection_refused" in out and queued(postfix) == 1


DRAIN_TOKEN = "drain-test-registration-token-0123"  # the collector wants 24 characters or more


@pytest.fixture
def collector(tmp_path):
    from mailagent.collector.settings import CollectorSettings
    from tests.collector.conftest import LiveServer
    server = LiveServer(CollectorSettings(
        listen=f"127.0.0.1:{free_port()}", registration_token=DRAIN_TOKEN,
        admin_token="drain-test-admin-token-0123456789", public_read=True,
        database_url=f"sqlite:///{tmp_path}/collector.db", evaluate_interval_seconds=3600,
        maintenance_interval_seconds=3600)).start()
    yield server
    server.stop()


@pytest.mark.timeout(120)
def test_empty_queue_tells_the_collector_the_host_is_drained(make_postfix, collector, tmp_path,
                                                             capsys, monkeypatch):
    postfix = make_postfix(free_port())
    path = settings_file(tmp_path, postfix, collector_url=collector.url, role="relay")
    signing.generate_key(tmp_path / "agent.key")
    monkeypatch.setattr("sys.stdin", io.StringIO(DRAIN_TOKEN + "\n"))
    assert main(["register", "--settings", path]) == 0
    assert main(["drain", "--settings", path, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert f"collector: marked drained at {collector.url}" in out
    host = httpx.get(f"{collector.url}/api/v1/hosts", timeout=10).json()["hosts"][0]
    assert host["drained"] is True and host["drained_at"] and host["role"] == "relay"
    assert host["queue"]["deferred"] == 0


@pytest.mark.timeout(120)
def test_unreachable_collector_is_said_and_exit_stays_0(make_postfix, tmp_path, capsys):
    postfix = make_postfix(free_port())
    signing.generate_key(tmp_path / "agent.key")
    path = settings_file(tmp_path, postfix, collector_url=f"http://127.0.0.1:{free_port()}",
                         http_timeout_seconds=2)
    assert main(["drain", "--settings", path, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "collector: NOT told" in out and "/api/v1/hosts/web1.example.org/drained" in out


def test_bad_drain_settings_exit_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "agent.toml"
    path.write_text('host = "web1"\ndrain_relay = "hub.example.net:1587"\n')
    assert main(["drain", "--settings", str(path)]) == 2
    assert capsys.readouterr().err.startswith("drain_relay:")
    path.write_text('host = "web1"\ndrain_ca_file = "/nonexistent/ca.pem"\n'
                    f'postfix_config_dir = "{tmp_path}"\n')
    assert main(["drain", "--settings", str(path)]) == 2
    err = capsys.readouterr().err
    assert "drain_ca_file: no such file" in err and "--config-dir: no main.cf" in err


# The pure parts.

POSTCONF_P = """\
submission/inet/syslog_name = postfix/submission
submission/inet/smtpd_client_restrictions = permit_sasl_authenticated,reject
smtps/inet/smtpd_client_restrictions = $mua_client_restrictions
smtps/inet/smtpd_tls_wrappermode = yes
"""


def test_services_that_override_the_client_restrictions_are_found():
    from mailagent.agent.drain_postfix import overriding_services
    assert overriding_services(POSTCONF_P) == ["smtps/inet", "submission/inet"]
    assert overriding_services("") == []


def test_handover_edits_follow_the_tls_mode_and_ca():
    from mailagent.agent.drain_postfix import changed, handover_edits
    implicit = handover_edits("[hub.example.net]:1465", "implicit", "/etc/postfix/hub-ca.pem", {})
    assert implicit == {"relayhost": "[hub.example.net]:1465", "smtp_fallback_relay": "",
                        "smtp_tls_wrappermode": "yes", "smtp_tls_security_level": "secure",
                        "smtp_host_lookup": "native", "smtp_tls_CAfile": "/etc/postfix/hub-ca.pem"}
    plain_ca = handover_edits("[hub.example.net]:1587", "starttls", None,
                              {"smtp_tls_policy_maps": "hash:/etc/postfix/tls_policy"})
    assert plain_ca["smtp_tls_security_level"] == "encrypt" and "smtp_tls_CAfile" not in plain_ca
    assert plain_ca["smtp_tls_wrappermode"] == "no" and plain_ca["smtp_tls_policy_maps"] == ""
    assert changed({"relayhost": "[smtp.example.com]:587", "smtp_host_lookup": "native"},
                   {"relayhost": "[hub]:1587", "smtp_host_lookup": "native"}) == \
        ["relayhost: [smtp.example.com]:587 -> [hub]:1587"]


def test_left_behind_mail_is_grouped_by_queue_and_reason(fixtures):
    from mailagent.agent.drain import leftover_lines
    lines = (fixtures / "postqueue-real-3.7.jsonl").read_text().splitlines() + ["not json", ""]
    out = leftover_lines(lines)
    assert out[0] == ("2 deferred: connect to 127.0.0.1[127.0.0.1]:2: Connection refused "
                      "(connection_refused)")
    assert out[1].startswith("1 deferred: delivery temporarily suspended")
    assert out[2].startswith("1 on hold (postsuper -h)") and len(out) == 3


def test_counts_and_outcomes_read_as_text():
    from mailagent.agent.drain import deliverable, describe, recipients
    counts = {"maildrop": 0, "incoming": 0, "active": 1, "deferred": 3, "hold": 2}
    assert describe(counts) == "1 active, 3 deferred, 2 hold (6 queued)"
    assert describe(dict.fromkeys(counts, 0)) == "empty" and deliverable(counts) == 4
    assert recipients({"sent": 4, "bounced": 1, "expired": 0}) == "recipients: 4 sent, 1 bounced"
    assert recipients(None) == "recipients: unknown, mail log unreadable"


@pytest.mark.parametrize("value,ok", [
    ("[hub.example.net]:1587", True), ("[10.0.2.2]:1465", True), ("[ipv6:2001:db8::1]:1587", True),
    ("hub.example.net:1587", False), ("[hub.example.net]", False), ("[hub]:70000", False),
    ("[hub example]:25", False)])
def test_drain_relay_must_be_a_bracketed_next_hop(value, ok):
    from pydantic import ValidationError

    from mailagent.agent.settings import AgentSettings
    if ok:
        assert AgentSettings(host="h", drain_relay=value).drain.relay == value
    else:
        with pytest.raises(ValidationError, match="drain_relay"):
            AgentSettings(host="h", drain_relay=value)


def test_role_and_drain_settings_validate(tmp_path):
    from mailagent.agent.settings import SettingsError, load_settings
    path = tmp_path / "agent.toml"
    path.write_text('host = "h"\nrole = "gateway"\ndrain_ca_file = "ca.pem"\ndrain_tls = "tls"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(path, {})
    assert [p.split(":")[0] for p in err.value.problems] == ["role", "drain_tls", "drain_ca_file"]


def test_drain_refuses_to_start_unless_root(tmp_path):
    from argparse import Namespace

    from mailagent.agent.cli import drain_problems
    from mailagent.agent.settings import AgentSettings
    args = Namespace(timeout=-1, handover_timeout=5, config_dir=None)
    problems = drain_problems(AgentSettings(host="h"), args, euid=1000)
    assert problems[0].startswith("mailagent drain: must run as root")
    assert problems[1].startswith("--timeout")


def test_the_notice_carries_role_and_lifecycle(tmp_path):
    from mailagent.agent.drain import drained_report
    from mailagent.agent.settings import AgentSettings
    from mailagent.report import Report
    counts = {"maildrop": 0, "incoming": 0, "active": 0, "deferred": 0, "hold": 0}
    report = drained_report(AgentSettings(host="hub1", role="hub"), counts, 1_800_000_000)
    again = Report.from_wire(report.to_wire())
    assert (again.lifecycle, again.role, again.queue.counts.deferred) == ("drained", "hub", 0)
