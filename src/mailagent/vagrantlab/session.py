"""The project's Vagrantfile driven for real: box, netns, repository, sink, vagrant and pyinfra.

A session owns one run folder (world-traversable, because libvirt's QEMU reads the box's kernel
from VAGRANT_HOME) holding VAGRANT_HOME, Vagrant's machine folder (VAGRANT_DOTFILE_PATH, so the
source tree gets no `.vagrant/`), the sink's lab dir, the storage pool and every log. Host-only
settings (driver qemu, the pool, no key insertion) go in VAGRANT_HOME's Vagrantfile, as the
README tells testers to do with theirs. `stop` undoes everything `start` and the steps did.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from mailagent.lab import sink
from mailagent.vagrantlab.box import GATEWAY, REPO_PORT, Box
from mailagent.vagrantlab.netns import Netns, name_for

HOME_VAGRANTFILE = """\
# This machine's settings (mailagent Vagrant test): software emulation, the test's own pool.
Vagrant.configure("2") do |config|
  config.ssh.insert_key = false
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
    lv.storage_pool_name = "mailagent"
    # Entropy for the guests' first-boot ssh-keygen (else sshd waits minutes under TCG).
    lv.random :model => "random"
  end
end
"""


class VagrantSession:
    """Everything one Vagrant run needs, started in order and stopped in any state."""

    def __init__(self, project: Path, folder: Path, logs: Path, relays: int = 2):
        self.project = project
        self.folder = folder
        self.logs = logs
        self.relays = relays
        self.machines = [f"relay{i}" for i in range(1, relays + 1)]
        self.netns = Netns(name_for(os.getpid()), folder)
        self.timings: dict[str, float] = {}
        self.lab_dir = folder / "lab"
        self.box: str | None = None  # the box `start` registered (and the Vagrantfile is told to use)

    def env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "VAGRANT_HOME": str(self.folder / "vagrant-home"),
            "VAGRANT_DOTFILE_PATH": str(self.folder / "machines"),
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
            # Vagrant would otherwise look for updates of itself and of the box online.
            "VAGRANT_CHECKPOINT_DISABLE": "1",
            "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
            "MAILAGENT_RELAYS": str(self.relays),
            **({"MAILAGENT_BOX": self.box} if self.box else {}),
            "MAILAGENT_LAB_DIR": str(self.lab_dir),
            "MAILAGENT_SINK_HOST": GATEWAY,
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def start(self, box: Box) -> None:
        """The namespace with libvirtd, VAGRANT_HOME with the box registered."""
        self.folder.chmod(0o755)
        home = self.folder / "vagrant-home"
        home.mkdir()
        (home / "Vagrantfile").write_text(HOME_VAGRANTFILE)
        self.netns.start()
        self.vagrant("box", "add", "--name", box.name, str(box.box_file), timeout=300)
        self.box = box.name

    def vagrant(self, *args: str, timeout: float = 600, check: bool = True):
        return self.timed(f"vagrant {args[0]}", ["vagrant", *args], timeout, check)

    def pyinfra(self, *args: str, label: str, timeout: float = 1200):
        """pyinfra in the project folder (inventories/vagrant.py finds the machines through vagrant)."""
        return self.timed(label, [sys.executable, "-m", "pyinfra", "-y", *args], timeout, check=False)

    def timed(self, label: str, argv: list[str], timeout: float, check: bool = True):
        started = time.monotonic()
        done = self.netns.run(argv, timeout=timeout, check=check, cwd=self.project, env=self.env())
        self.timings[label] = round(time.monotonic() - started, 1)
        with open(self.folder / "commands.log", "a") as log:
            log.write(f"$ {' '.join(argv)}  ({self.timings[label]}s, exit {done.returncode})\n"
                      f"{done.stdout}{done.stderr}\n")
        return done

    def serve(self, box: Box) -> None:
        """The apt repository and the sink, on the libvirt gateway (it exists once `up` made it)."""
        self.netns.spawn([sys.executable, "-m", "http.server", str(REPO_PORT), "--bind", GATEWAY,
                          "--directory", str(box.repo)], "repo-server.log")
        self.netns.run([sys.executable, "-m", "mailagent", "lab", "sink", "start", "--bind", GATEWAY],
                       timeout=60, env=self.env())

    def sink_info(self) -> dict:
        return sink.status(self.lab_dir)

    def send_mail(self, machine: str) -> str:
        """One message from `machine` through its own sendmail; returns its Message-ID."""
        message_id = f"<{uuid.uuid4().hex}@{machine}.vagrant.mailagent.test>"
        text = (f"From: vagrant@{machine}\nTo: someone@example.com\nSubject: vagrant test\n"
                f"Message-ID: {message_id}\n\nsent from a Vagrant box\n")
        command = f"printf %s '{text}' | /usr/sbin/sendmail -i someone@example.com"
        self.vagrant("ssh", machine, "-c", command, timeout=120)
        return message_id

    def wait_received(self, message_ids, timeout: float = 120) -> dict[str, list[dict]]:
        deadline = time.monotonic() + timeout
        while True:
            records = sink.messages(self.lab_dir)
            found = {mid: [r for r in records if (r.get("headers") or {}).get("message_id") == mid]
                     for mid in message_ids}
            if all(found.values()) or time.monotonic() > deadline:
                return found
            time.sleep(1)

    def stop(self) -> list[str]:
        """Destroy the machines, stop the sink and the namespace; keep the logs, remove the rest."""
        notes: list[str] = []
        if not self.folder.exists():  # stopped already
            return notes
        if (self.folder / "machines" / "machines").exists() and self.netns.leftover_pids():
            done = self.timed("teardown: vagrant destroy", ["vagrant", "destroy", "-f"], 300, check=False)
            if done.returncode != 0:
                notes.append(f"vagrant destroy failed: {done.stderr[-500:]}")
        sink.stop(self.lab_dir)
        notes += self.netns.stop()
        self.logs.mkdir(parents=True, exist_ok=True)
        for log in [*self.folder.glob("*.log"), self.lab_dir / "sink" / "sink.log"]:
            if log.is_file():
                shutil.copy(log, self.logs / log.name)
        shutil.rmtree(self.folder, ignore_errors=True)
        return notes
