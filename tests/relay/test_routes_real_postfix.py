"""sender_routes on a real Postfix at native speed: a private instance running what `render`
writes (main.cf, the sender maps, the SASL map, the routes' master.cf transports) relays to the
lab sink on free loopback ports; each sender must arrive on its route's port with its login.

Needs root and Postfix on this machine (as tests/lab/test_sink_postfix.py, whose instance it uses).
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from mailagent.lab import sink
from mailagent.relay.parse import parse_profile
from mailagent.relay.render import render
from mailagent.relay.target import Target
from tests.lab.test_sink_postfix import SERVICES, Postfix, delivered, postfix_version

pytestmark = pytest.mark.timeout(120)
LOGINS = {"route-a": "pw-route-a", "route-b": "pw-route-b"}
# The instance's own folders and listener; everything else comes from the rendered main.cf.
OWN = ("config_directory", "queue_directory", "data_directory", "maillog_file",
       "maillog_file_prefixes", "myhostname", "inet_protocols", "mynetworks")


def profile_for(info: dict, ca_file: str):
    ports = info["ports"]
    # The routes trust the CA by their own ca_pem (a file per route), the main relay by ca_file.
    common = {"host": "127.0.0.1", "tls_verify": "secure", "ca_pem": Path(ca_file).read_text()}
    return parse_profile({
        "provider": "custom", **common, "ca_pem": None, "ca_file": ca_file, "port": ports["starttls"][0],
        "tls": "starttls",
        "username": info["username"], "password": info["password"],
        "extra_main_cf": {"smtp_tls_secure_cert_match": sink.DEFAULT_HOSTNAME},
        "sender_routes": [
            {"senders": ["a.test"], **common, "port": ports["starttls"][1], "tls": "starttls",
             "username": "route-a", "password": LOGINS["route-a"]},
            {"senders": ["alerts@b.test"], **common, "port": ports["implicit"][0], "tls": "implicit",
             "username": "route-b", "password": LOGINS["route-b"]},
        ]}, environ={})


def install(instance: Postfix, files: dict[str, str]) -> None:
    """The rendered files into the instance's folder, /etc/postfix paths pointed there."""
    local = {name: text.replace("/etc/postfix/", f"{instance.etc}/") for name, text in files.items()}
    settings = dict(line.split(" = ", 1) for line in local["main.cf"].splitlines()
                    if " = " in line and not line.startswith("#"))
    settings |= {key: str(value) for key, value in instance.base().items() if key in OWN}
    (instance.etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    services = SERVICES.format(listen=f"127.0.0.1:{instance.port}")
    # tlsproxy chrooted as Debian runs it (TLS connection reuse is on, as by default).
    tlsproxy = local["master.cf.entries"]
    (instance.etc / "master.cf").write_text(services + tlsproxy + local["master.cf.routes"])
    for name in [n for n in local if n.endswith("-ca.pem")]:
        (instance.etc / name).write_text(local[name])
    for name in ("sasl_passwd", "sender_relay", "sender_transport"):
        (instance.etc / name).write_text(local[name])
        subprocess.run(["postmap", "-c", str(instance.etc), str(instance.etc / name)], check=True,
                       capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    lab = tmp_path_factory.mktemp("routes-sink")
    info = sink.spawn(lab, starttls_ports=(0, 0), implicit_ports=(0,))
    sink.set_logins(lab, LOGINS)
    root = Path(tempfile.mkdtemp(prefix="mailagent-routes-"))
    os.chmod(root, 0o755)
    instance = Postfix(root, info)
    try:
        files = render(profile_for(info, str(instance.etc / "lab-ca.pem")),
                       Target(postfix_version=postfix_version()))
        install(instance, files)
        warnings = subprocess.run(["postconf", "-c", str(instance.etc), "-n"], capture_output=True,
                                  text=True, timeout=30).stderr
        assert warnings == ""
        instance.postfix("start")
        yield lab, info, instance
    finally:
        subprocess.run(["postfix", "-c", str(instance.etc), "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        sink.stop(lab)


def submit(instance: Postfix, sender: str) -> str:
    msg_id = f"<{uuid.uuid4().hex}@relay-test.lab.mailagent.test>"
    with smtplib.SMTP("127.0.0.1", instance.port, timeout=30) as smtp:
        smtp.sendmail(sender, ["ops@dest.test"], f"Subject: {sender}\r\nMessage-ID: {msg_id}\r\n\r\nrouted\r\n")
    return msg_id


@pytest.mark.parametrize("sender, kind, index, user", [
    ("app@a.test", "starttls", 1, "route-a"),  # a domain route, STARTTLS
    ("alerts@b.test", "implicit", 0, "route-b"),  # an address route, implicit TLS beside it
    ("other@b.test", "starttls", 0, None),  # not routed: the default relay and its login
    ("app@elsewhere.test", "starttls", 0, None),
])
def test_each_sender_arrives_by_its_route(routed, sender, kind, index, user):
    lab, info, instance = routed
    record = delivered(lab, submit(instance, sender))
    assert (record["port"], record["kind"], record["auth_user"], record["mail_from"], record["tls"]) == (
        info["ports"][kind][index], kind, user or info["username"], sender, True)
