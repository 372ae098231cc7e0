"""`mailagent send-test` against a real private Postfix (tests/agent/postfix_instance.py) whose
relayhost is a loopback SMTP server answering as told: submission through Postfix's own
sendmail, following in Postfix's own log, the smarthost's real reply. No VM."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.agent.postfix_instance import PostfixInstance

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(shutil.which("postfix") is None, reason="needs Postfix")]
MAILAGENT = str(Path(sys.executable).with_name("mailagent"))


class Smarthost:
    """Answers RCPT and DATA with `rcpt` / `data`; remembers the queue ids it handed out."""

    def __init__(self):
        self.rcpt, self.data, self.queued = "250 2.1.5 Ok", None, []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        envelope.rcpt_tos.append(address)
        return self.rcpt

    async def handle_DATA(self, server, session, envelope):
        if self.data:
            return self.data
        self.queued.append(f"LOOP{len(self.queued):04d}")
        return f"250 2.0.0 Ok: queued as {self.queued[-1]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def smarthost():
    handler, port = Smarthost(), free_port()
    controller = aiosmtpd.Controller(handler, hostname="127.0.0.1", port=port,
                                     server_hostname="smarthost.test")
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
def postfix(smarthost):
    # Not under pytest's tmp_path: that is 0700 root, and Postfix daemons run as `postfix`.
    root = Path(tempfile.mkdtemp(prefix="mailagent-sendtest-"))
    root.chmod(0o755)
    instance = PostfixInstance(root, refused_port=smarthost[1]).start()
    yield instance
    instance.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def settings_file(postfix):
    folder = postfix.root / "agent"
    folder.mkdir()
    (folder / "relay.json").write_text(json.dumps({"host": "127.0.0.1", "port": 0, "username": "loop"}))
    path = folder / "agent.toml"
    path.write_text(f'host = "agenttest.localdomain"\nlog_source = "{postfix.maillog}"\n'
                    f'postfix_config_dir = "{postfix.etc}"\nrelay_settings_path = "{folder / "relay.json"}"\n')
    return path


def send_test(settings_file, *args) -> tuple[int, dict]:
    done = subprocess.run([MAILAGENT, "send-test", "--settings", str(settings_file), "--json",
                           "--to", "ops@example.net", "--timeout", "60", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_delivered_with_the_smarthosts_reply(smarthost, settings_file):
    handler, port = smarthost
    rc, result = send_test(settings_file, "--from", "app@example.org")
    assert (rc, result["result"]) == (0, "delivered"), result
    assert result["reply"] == f"250 2.0.0 Ok: queued as {handler.queued[-1]}"
    assert result["smarthost_queue_id"] == handler.queued[-1]
    assert result["relay"] == f"127.0.0.1[127.0.0.1]:{port}"
    assert (result["from"], result["tls"], result["auth_user"]) == ("app@example.org", None, "loop")
    assert result["queue_id"] and result["message_id"].endswith("@agenttest.localdomain>")


def test_bounced_on_a_5xx(smarthost, settings_file):
    handler, _ = smarthost
    handler.rcpt = "550 5.1.1 <ops@example.net>: Recipient address rejected: User unknown"
    try:
        rc, result = send_test(settings_file)
    finally:
        handler.rcpt = "250 2.1.5 Ok"
    assert (rc, result["result"], result["code"], result["dsn"]) == (1, "bounced", 550, "5.1.1"), result
    assert result["from"] == "root@agenttest.localdomain"  # relay.json names no sender_address


def test_deferred_on_a_4xx_with_the_hint(smarthost, settings_file, postfix):
    handler, _ = smarthost
    handler.data = "451 4.3.0 Try again later"
    try:
        rc, result = send_test(settings_file)
    finally:
        handler.data = None
    assert (rc, result["result"], result["code"]) == (1, "deferred", 451), result
    assert result["hint"].startswith("temporary failure at the smarthost")
    subprocess.run(["postsuper", "-c", str(postfix.etc), "-d", result["queue_id"]], capture_output=True)
