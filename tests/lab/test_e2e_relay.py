"""The relay deploy on real booted Debian VMs, mail through the real TLS+AUTH sink.

One lab (relay1 on 2587 STARTTLS, relay2 on 2465 implicit TLS), deployed once by the `deployed`
fixture, serves every test in this file, in order; tests that change a host's settings put them
back, deploying only that host.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailagent.lab import sink, ssh, vm
from mailagent.lab.mail import delay_reasons, flush, queue, send_mail, wait_deferred, wait_received
from tests.lab.helpers import changed_operations, deploy, restart_sink

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]


def sink_dir(state) -> Path:
    return Path(state["lab_dir"])


def test_first_deploy_then_mail_arrives_over_tls_with_auth_on_2587_and_2465(deployed):
    state, _, _ = deployed
    ids = {host: send_mail(state, host) for host in ("relay1", "relay2")}
    found = wait_received(state, ids.values())
    for host, port, kind in (("relay1", 2587, "starttls"), ("relay2", 2465, "implicit")):
        records = found[ids[host]]
        assert len(records) == 1, f"{host}: {records}"
        record = records[0]
        assert record["tls"] is True
        assert record["auth_user"] == state["sink"]["username"]
        assert (record["port"], record["kind"]) == (port, kind)


def test_second_deploy_changes_nothing(deployed):
    state, folder, _ = deployed
    result = deploy(state, folder)
    assert result.returncode == 0
    changed = changed_operations(result.stdout)
    assert changed == {}, f"second deploy changed: {changed}"


def test_starttls_on_2525(deployed):
    state, folder, _ = deployed
    assert deploy(state, folder, {"relay2": {"port": 2525}}, args=only("relay2")).returncode == 0
    message_id = send_mail(state, "relay2")
    records = wait_received(state, [message_id])[message_id]
    assert [(r["port"], r["tls"], r["auth_user"]) for r in records] == [
        (2525, True, state["sink"]["username"])]
    assert deploy(state, folder, args=only("relay2")).returncode == 0  # back to 2465


def test_secrets_stay_private(deployed):
    state, folder, first = deployed
    password = state["sink"]["password"]
    for path in ("/etc/postfix/sasl_passwd", "/etc/postfix/sasl_passwd.db"):
        rc, out, _ = ssh.run(state, "relay1", f"stat -c '%U %G %a' {path}")
        assert (rc, out.strip()) == (0, "root root 600"), path
    # A change of every file the deploy writes, shown with --diff: the password is never printed.
    diff = deploy(state, folder, {"relay1": {"delay_warning": "5h", "password": password + "x"}},
                  args=("--diff", "-vv", *only("relay1")))
    assert diff.returncode != 0  # the wrong password fails the relay check
    assert "delay_warning_time" in diff.stdout  # the diff really was shown
    restore = deploy(state, folder, args=("--diff", "-vv", *only("relay1")))
    assert restore.returncode == 0
    for output in (first.stdout, diff.stdout, restore.stdout):
        assert password not in output
    rc, log, _ = ssh.run(state, "relay1", "journalctl --no-pager -o cat; cat /var/log/mail.log 2>/dev/null; true")
    assert rc == 0 and "postfix" in log
    assert password not in log
    rc, main_cf, _ = ssh.run(state, "relay1", "cat /etc/postfix/main.cf /etc/mailagent/relay.json")
    assert password not in main_cf


def test_no_open_relay_from_another_vm(deployed):
    state, _, _ = deployed
    _, listening, _ = ssh.run(state, "relay1", "ss -Hltn 'sport = :25'")
    addresses = {line.split()[3] for line in listening.splitlines()}
    assert addresses and all(a.startswith(("127.0.0.1:", "[::1]:")) for a in addresses), addresses
    port = next(h["smtp_port"] for h in state["hosts"] if h["name"] == "relay1")
    probe = (f"python3 -c \"import socket; s = socket.create_connection(('10.0.2.2', {port}), 10); "
             f"s.settimeout(10); print(repr(s.recv(100)))\"")
    rc, out, err = ssh.run(state, "relay2", probe)
    # Nothing listens on relay1's external address: the forwarded connection is closed or reset.
    assert b"220" not in out.encode() and (rc != 0 or out.strip() == "b''"), out + err


def test_wrong_password_fails_the_deploy_with_hint_and_mail_waits(deployed):
    state, folder, _ = deployed
    bad = deploy(state, folder, {"relay1": {"password": "not-the-password"}}, args=only("relay1"))
    assert bad.returncode != 0
    assert "535" in bad.stdout and "wrong credentials" in bad.stdout
    waiting = len(queue(state, "relay1"))
    message_id = send_mail(state, "relay1", subject="sent while the password was wrong")
    entries = wait_deferred(state, "relay1", waiting + 1)
    assert "535" in delay_reasons(entries), entries
    assert wait_received(state, [message_id], timeout=10)[message_id] == []
    assert deploy(state, folder, args=only("relay1")).returncode == 0
    records = wait_received(state, [message_id])[message_id]
    assert len(records) == 1 and records[0]["tls"]
    assert queue(state, "relay1") == []


def test_sink_down_mail_queues_then_arrives_exactly_once(deployed):
    state, _, _ = deployed
    waiting = len(queue(state, "relay1"))
    sink.stop(sink_dir(state))
    try:
        ids = [send_mail(state, "relay1", subject=f"outage {n}") for n in range(3)]
        deferred = wait_deferred(state, "relay1", waiting + 3)
        assert len(deferred) == waiting + 3
        assert re.search(r"refused|timed out|connect", delay_reasons(deferred)), deferred
    finally:
        restart_sink(state)
    flush(state, "relay1")
    found = wait_received(state, ids)
    assert {mid: len(records) for mid, records in found.items()} == {mid: 1 for mid in ids}


def test_wrong_certificate_name_under_secure_sends_nothing(deployed):
    state, folder, _ = deployed
    # The agents' own relay checks authenticate too: silence them, so every AUTH counted is Postfix's.
    agents(state, "stop")
    try:
        before = len(sink.auth_attempts(sink_dir(state)))
        wrong = {"relay1": {"host": "wrong-name.lab.mailagent.test", "tls_verify": "secure"}}
        result = deploy(state, folder, wrong, args=only("relay1"))
        assert result.returncode != 0 and "certificate" in result.stdout
        waiting = len(queue(state, "relay1"))
        message_id = send_mail(state, "relay1", subject="must not leave")
        reasons = delay_reasons(wait_deferred(state, "relay1", waiting + 1))
        assert re.search(r"certificate|TLS|verif", reasons, re.I), reasons
        assert wait_received(state, [message_id], timeout=15)[message_id] == []
        assert len(sink.auth_attempts(sink_dir(state))) == before  # the password was never sent
    finally:
        agents(state, "start")
    assert deploy(state, folder, args=only("relay1")).returncode == 0
    assert len(wait_received(state, [message_id])[message_id]) == 1


def test_vm_killed_hard_keeps_its_queue_and_delivers_after_boot(deployed):
    state, _, _ = deployed
    waiting = len(queue(state, "relay2"))
    sink.stop(sink_dir(state))
    try:
        message_id = send_mail(state, "relay2", subject="survives a hard kill")
        queued = {e["queue_id"] for e in wait_deferred(state, "relay2", waiting + 1)}
        vm.kill_hard(state, "relay2")
        vm.boot(state, "relay2")
        assert queued <= {e["queue_id"] for e in queue(state, "relay2")}
    finally:
        restart_sink(state)
    flush(state, "relay2")
    assert len(wait_received(state, [message_id])[message_id]) == 1


def only(host: str) -> tuple[str, ...]:
    """pyinfra arguments deploying just `host`: a test that changed one host's settings puts
    back only that one (a 3-host deploy under TCG on 2 cores takes about 3.5 min)."""
    return ("--limit", host)


def agents(state, action: str) -> None:
    for host in (e["name"] for e in state["hosts"]):
        rc, out, err = ssh.run(state, host, f"systemctl {action} mailagent")
        assert rc == 0, out + err

