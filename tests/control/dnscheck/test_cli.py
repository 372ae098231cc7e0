"""`mailagent dns-check` as a user runs it: exit codes, --json, --inventory, against the test nsd."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def mailagent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailagent", "dns-check", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_a_ready_domain_exits_0_with_one_line_per_finding(nsd):
    done = mailagent("good.example.test", "--provider", "sendgrid", "--nameserver", nsd.nameserver)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "# good.example.test via sendgrid"
    assert [line.split()[0] for line in lines[1:]] == ["ok"] * 8


def test_a_failing_finding_exits_1_and_json_lists_it(nsd):
    done = mailagent("nospf.example.test", "--provider", "ses", "--region", "eu-west-1",
                     "--selector", "tok1", "--nameserver", nsd.nameserver, "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["senders"] == [{"domain": "nospf.example.test", "provider": "ses", "via": "ses (eu-west-1)",
                                  "selectors": ["tok1"], "hosts": [], "sources": ["command line"]}]
    spf = next(f for f in report["findings"] if f["check"] == "spf")
    assert spf == {"status": "fail", "domain": "nospf.example.test", "check": "spf",
                   "message": "no SPF record",
                   "publish": 'nospf.example.test. TXT "v=spf1 include:amazonses.com ~all"'}


def test_bad_usage_exits_2_with_one_line_per_problem(nsd):
    done = mailagent("not a domain", "--provider", "ses", "--nameserver", nsd.nameserver)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["not a domain: not a domain name",
                                        "--region: ses needs a region, e.g. us-east-1"]
    assert mailagent("good.example.test", "--nameserver", "dns.example").returncode == 2
    assert mailagent().returncode == 2


def test_the_guard_refuses_the_system_resolver():
    done = mailagent("good.example.test", "--provider", "sendgrid")
    assert done.returncode == 2
    assert "needs an explicit loopback nameserver" in done.stderr


def test_inventory_checks_every_sender_by_the_provider_it_really_uses(nsd, tmp_path):
    ns = nsd.nameserver
    inventory = tmp_path / "production.py"
    inventory.write_text(f"""
hub = [("@fake/hub1", {{"relay": {{"provider": "sendgrid", "password": "k"}},
                        "hub_server": {{"names": ["relay-hub.example.test"]}}, "dns_nameserver": {ns!r}}})]
relays = [
    ("@fake/web1", {{"relay": {{"provider": "hub", "host": "relay-hub.example.test",
                               "sender_address": "app@good.example.test"}}, "dns_nameserver": {ns!r}}}),
    ("@fake/web2", {{"relay": {{"provider": "hub", "host": "relay-hub.example.test",
                               "sender_address": "app@good.example.test"}}, "dns_nameserver": {ns!r}}}),
    ("@fake/worker1", {{"relay": {{"provider": "mandrill", "username": "ops", "password_env": "UNSET",
                                  "myorigin": "nokeys.example.test"}}, "dns_nameserver": {ns!r}}}),
]
""")
    done = mailagent("--inventory", str(inventory), "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert [(s["domain"], s["via"], s["hosts"], s["sources"]) for s in report["senders"]] == [
        ("good.example.test", "hub relay-hub.example.test -> sendgrid", ["@fake/web1", "@fake/web2"],
         ["relay.sender_address"]),
        ("nokeys.example.test", "mandrill", ["@fake/worker1"], ["relay.myorigin"])]
    failing = {(f["domain"], f["check"]) for f in report["findings"] if f["status"] == "fail"}
    assert failing == {("nokeys.example.test", "dkim"), ("nokeys.example.test", "alignment"),
                       ("nokeys.example.test", "mx")}


def test_inventory_that_cannot_load_exits_2(tmp_path):
    inventory = tmp_path / "broken.py"
    inventory.write_text("import os\n"
                         "relays = [('web1', {'relay': {'provider': os.environ['NOPE_UNSET']}})]\n")
    done = mailagent("--inventory", str(inventory))
    assert done.returncode == 2 and "cannot load the inventory" in done.stderr and "NOPE_UNSET" in done.stderr
