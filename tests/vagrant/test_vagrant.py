"""The project's Vagrantfile and inventories/vagrant.py for real: two Debian 13 relay boxes
(debian/trixie64, built locally) under libvirt.

One session (the `deployed` fixture) builds or reuses the box, validates the Vagrantfile, brings
up relay1 and relay2 inside a network namespace of the test's own (libvirtd, its networks, the
apt repository and the sink live only there), and deploys deploy/site.py with pyinfra. The tests
then run in order; the last one tears everything down and checks nothing is left. The fixture's
finalizer tears down too, so a failure anywhere leaves nothing running either.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mailagent.vagrantlab import box as vbox
from mailagent.vagrantlab.netns import reap_stale
from mailagent.vagrantlab.session import VagrantSession
from mailagent.control.cli import publish
from roles.mailagent.wheels import WheelTarget, wheel_set_for
from tests.lab.helpers import changed_operations

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]

PROJECT = Path(__file__).resolve().parents[2]
DEPLOY = ("inventories/vagrant.py", "deploy/site.py")


@pytest.fixture(scope="module")
def deployed(request, tmp_path_factory):
    """(session, first deploy result) after `vagrant up` and a first site deploy."""
    say = request.config.pluginmanager.get_plugin("terminalreporter").write_line
    started = time.monotonic()
    box = vbox.ensure_box(progress=lambda msg: say(f"vagrant test: {msg}"))
    box_seconds = round(time.monotonic() - started, 1)
    # Built outside the namespace: the hosts install the agent from these, with no index (a folder
    # of sets by target, as `mailagent wheels --out` writes, for either suite's boxes).
    wheels = tmp_path_factory.mktemp("wheels")
    for target in (WheelTarget("3.11.2", "x86_64", (2, 36)), WheelTarget("3.13.5", "x86_64", (2, 41))):
        publish(wheel_set_for(target).folder, wheels / target.key)
    runs = vbox.cache_root() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for note in reap_stale(runs):  # a run killed before its own teardown (SIGKILL, Ctrl-C)
        say(f"vagrant test: {note}")
    session = VagrantSession(PROJECT, Path(tempfile.mkdtemp(dir=runs, prefix=f"{os.getpid()}-")),
                             logs=tmp_path_factory.mktemp("vagrant-logs"), relays=2)
    session.timings["box (build or reuse)"] = box_seconds

    def teardown() -> None:
        for note in session.stop():
            say(f"vagrant test teardown: {note}")
        say("vagrant test timings: " + ", ".join(f"{k} {v}s" for k, v in session.timings.items()))
        say(f"vagrant test logs: {session.logs}")

    request.addfinalizer(teardown)
    session.start(box)
    session.vagrant("validate", timeout=60)
    session.vagrant("up", "--provider=libvirt", timeout=900)
    session.serve(box)
    first = session.pyinfra(*DEPLOY, "--data", f"mailagent_wheel_dir={wheels}",
                            label="first deploy")
    return session, first, wheels


def test_first_deploy_succeeds(deployed):
    _, first, _ = deployed
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    output = first.stdout + first.stderr  # pyinfra writes its progress to stderr
    for host in ("@vagrant/relay1", "@vagrant/relay2"):
        assert f"[{host}] Connected" in output


def test_mail_from_each_box_reaches_the_sink_over_tls_with_auth(deployed):
    session, _, _ = deployed
    ids = {machine: session.send_mail(machine) for machine in session.machines}
    found = session.wait_received(ids.values())
    user = "lab-relay"
    for machine, message_id in ids.items():
        records = found[message_id]
        assert len(records) == 1, f"{machine}: {records}"
        record = records[0]
        assert record["tls"] is True, record
        assert record["auth_user"] == user, record
        assert (record["port"], record["kind"]) == (2587, "starttls"), record
        assert record["peer"].startswith("192.168.121."), record


def test_second_deploy_changes_nothing(deployed):
    session, _, wheels = deployed
    second = session.pyinfra(*DEPLOY, "--data", f"mailagent_wheel_dir={wheels}",
                             label="second deploy")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    output = second.stdout + second.stderr
    assert "--> Results:" in output and "Grand total" in output, output[-4000:]
    assert changed_operations(output) == {}, output[-4000:]


def test_destroy_and_teardown_leave_nothing(deployed):
    session, _, _ = deployed
    destroyed = session.vagrant("destroy", "-f", timeout=300)
    assert destroyed.returncode == 0
    assert ",state,running" not in session.vagrant("status", "--machine-readable", timeout=60).stdout
    netns = session.netns.name
    assert session.stop() == []  # nothing needed force: every process stopped when asked
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not Path("/run/libvirt").exists()
    assert not session.folder.exists()
    assert _processes_mentioning(str(session.folder)) == []



def _processes_mentioning(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids
