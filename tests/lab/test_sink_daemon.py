"""The sink as a process: spawn/stop leave nothing behind, restarts keep the CA and credentials,
and the `mailagent lab sink|mail` commands drive it. Real daemons on loopback, no VMs."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import stat
from pathlib import Path

import pytest

from mailagent.cli import main as mailagent
from mailagent.lab import sink

pytestmark = pytest.mark.timeout(60)

FREE = {"starttls_ports": (0, 0), "implicit_ports": (0,)}


def processes_mentioning(folder: Path) -> list[int]:
    """PIDs of live (non-zombie) processes whose command line names `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if str(folder).encode() in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.fixture
def lab_dir(tmp_path):
    """A lab dir whose sink is stopped after the test, pass or fail."""
    yield tmp_path
    sink.stop(tmp_path)


def deliver(info: dict, tag: str) -> None:
    """One message over STARTTLS trusting only the CA file `info` names."""
    ctx = ssl.create_default_context(cafile=info["ca_cert"])
    with smtplib.SMTP("127.0.0.1", info["ports"]["starttls"][0], timeout=10) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(info["username"], info["password"])
        smtp.sendmail("app@client.test", ["ops@dest.test"], f"Subject: {tag}\r\n\r\nhi\r\n")


def test_spawn_runs_a_detached_daemon_and_stop_leaves_no_process(lab_dir):
    info = sink.spawn(lab_dir, **FREE)
    pid = info["pid"]
    assert os.getsid(pid) == pid  # its own session: a terminal's hangup or Ctrl-C does not reach it
    assert processes_mentioning(lab_dir) == [pid]
    for port in info["ports"]["starttls"] + info["ports"]["implicit"]:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # every port accepts as soon as spawn returns
    assert {"runtime.json", "sink.pid"} <= {p.name for p in (lab_dir / "sink").iterdir()}
    sink.stop(lab_dir)
    assert not Path(f"/proc/{pid}").exists()  # gone and reaped, not a zombie
    assert processes_mentioning(lab_dir) == []
    assert not (lab_dir / "sink" / "runtime.json").exists() and not (lab_dir / "sink" / "sink.pid").exists()
    assert "stopping" in (lab_dir / "sink" / "sink.log").read_text()  # SIGTERM path, not SIGKILL
    sink.stop(lab_dir)  # idempotent
    assert sink.status(lab_dir)["running"] is False


def test_restart_keeps_ca_credentials_and_ports(lab_dir):
    first = sink.spawn(lab_dir, **FREE)
    ca_before = Path(first["ca_cert"]).read_bytes()
    deliver(first, "before restart")
    sink.stop(lab_dir)
    second = sink.spawn(lab_dir, starttls_ports=first["ports"]["starttls"], implicit_ports=first["ports"]["implicit"])
    assert second["pid"] != first["pid"]
    for key in ("username", "password", "ports", "ca_cert"):
        assert second[key] == first[key], key
    assert Path(second["ca_cert"]).read_bytes() == ca_before
    deliver(first, "after restart")  # a client holding the old CA file and password still gets in
    assert [m["headers"]["subject"] for m in sink.messages(lab_dir)] == ["before restart", "after restart"]
    creds = lab_dir / "sink" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert stat.S_IMODE((lab_dir / "sink" / "ca" / "ca.key").stat().st_mode) == 0o600


def test_spawn_again_keeps_the_running_sink(lab_dir):
    first = sink.spawn(lab_dir, **FREE)
    again = sink.spawn(lab_dir, starttls_ports=first["ports"]["starttls"], implicit_ports=first["ports"]["implicit"])
    assert again == first


def test_a_taken_port_fails_clearly_and_leaves_nothing(lab_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(sink.SinkError, match="address already in use"):
            sink.spawn(lab_dir, starttls_ports=(port,), implicit_ports=(0,))
    assert processes_mentioning(lab_dir) == []


def test_cli_start_status_mode_mail_stop(lab_dir, monkeypatch, capsys):
    monkeypatch.setenv("MAILAGENT_LAB_DIR", str(lab_dir))
    # Free ports recorded as if by an earlier start, so the test never binds the real 2525/2587/2465.
    (lab_dir / "sink").mkdir()
    (lab_dir / "sink" / "config.json").write_text(json.dumps({"starttls_ports": [0], "implicit_ports": [0]}))
    assert mailagent(["lab", "sink", "start"]) == 0
    recorded = json.loads((lab_dir / "sink" / "config.json").read_text())
    assert 0 not in recorded["starttls_ports"] + recorded["implicit_ports"]
    capsys.readouterr()
    assert mailagent(["lab", "sink", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"]
    assert status["ports"] == {"starttls": recorded["starttls_ports"], "implicit": recorded["implicit_ports"]}
    assert mailagent(["lab", "sink", "mode", "tempfail"]) == 0
    assert sink.status(lab_dir)["mode"] == "tempfail"
    assert mailagent(["lab", "sink", "mode", "no-starttls"]) == 0
    assert sink.status(lab_dir)["mode"] == "no-starttls"
    with pytest.raises(SystemExit) as bad:
        mailagent(["lab", "sink", "mode", "sometimes"])
    assert bad.value.code == 2
    mailagent(["lab", "sink", "mode", "normal"])
    creds = json.loads((lab_dir / "sink" / "credentials.json").read_text())
    deliver(creds | {"ports": status["ports"], "ca_cert": str(lab_dir / "sink" / "ca" / "ca.pem")}, "via cli")
    capsys.readouterr()
    assert mailagent(["lab", "mail", "--json"]) == 0
    mails = json.loads(capsys.readouterr().out)
    assert [m["headers"]["subject"] for m in mails] == ["via cli"] and mails[0]["tls"]
    assert mailagent(["lab", "mail"]) == 0
    assert "lab-relay/" in capsys.readouterr().out
    pid = status["pid"]
    assert mailagent(["lab", "sink", "stop"]) == 0
    assert mailagent(["lab", "sink", "start"]) == 0  # comes back on the recorded ports
    assert sink.status(lab_dir)["ports"] == status["ports"] and sink.status(lab_dir)["pid"] != pid
