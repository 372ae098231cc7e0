"""postfix_health: master alive, configuration clean, relayhost as deployed.

Emits PostfixSection(master_running=True, check_ok=True, relay_expected="[smtp.example.com]:2587",
relay_actual="[smtp.example.com]:2587").

`postfix check` is reserved for root, and the agent is not root: as non-root the configuration
check is `postconf -n` with its warnings (unknown parameters, bad values, unreadable files).
"""

from __future__ import annotations

import os
from pathlib import Path

from mailagent.agent import runner
from mailagent.agent.settings import AgentSettings
from mailagent.relay import deployed
from mailagent.report import PostfixSection

TIMEOUT = 20


class Check:
    section = "postfix"

    def __init__(self, settings: AgentSettings, euid: int | None = None, proc: Path = Path("/proc")):
        self.settings = settings
        self.euid = os.geteuid() if euid is None else euid
        self.proc = proc
        self.conf = ["-c", str(settings.postfix_config_dir)] if settings.postfix_config_dir else []

    def interval_seconds(self) -> float:
        return 0

    def run(self, now: float) -> PostfixSection:
        return PostfixSection(master_running=self.master_running(), check_ok=self.check_ok(),
                              relay_expected=self.relay_expected(), relay_actual=self.relay_actual())

    def master_running(self) -> bool:
        """The pid in pid/master.pid is a live process named `master`."""
        try:
            pid = int((self.settings.postfix_spool / "pid" / "master.pid").read_text().strip())
            return (self.proc / str(pid) / "comm").read_text().strip() == "master"
        except (FileNotFoundError, ValueError):
            return False

    def check_ok(self) -> bool:
        argv = ["postfix", *self.conf, "check"] if self.euid == 0 else ["postconf", *self.conf, "-n"]
        result = runner.run(argv, TIMEOUT)
        return result.returncode == 0 and "warning" not in result.stderr and "fatal" not in result.stderr

    def relay_actual(self) -> str | None:
        result = runner.run(["postconf", *self.conf, "-h", "relayhost"], TIMEOUT)
        if result.returncode != 0:
            raise runner.CommandFailed(f"postconf -h relayhost: {result.stderr.strip()[:300]}")
        return result.stdout.strip() or None

    def relay_expected(self) -> str | None:
        try:
            relay = deployed.read(self.settings.relay_settings_path)
        except deployed.RelayTargetError:  # relay_reach reports it; master and check still count
            return None
        return relay.relayhost if relay else None
