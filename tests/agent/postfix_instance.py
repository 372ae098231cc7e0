"""A private, throw-away Postfix instance (own config, queue, data folder and log file).

Used by the real-Postfix tests and bench/queue_scan.py. Never touches /etc/postfix: everything
lives under `root`, and the instance is started and stopped with `postfix -c <root>/etc`.
Its relayhost is a closed loopback port, so all mail is deferred ("Connection refused").
Needs root (postfix start) — the test machine runs as root after `make deps`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
master_service_disable = inet
relayhost = [127.0.0.1]:{port}
myhostname = agenttest.localdomain
mydestination =
alias_maps =
alias_database =
syslog_name = postfix-agenttest
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
enable_long_queue_ids = {long_ids}
{extra}
"""


class PostfixInstance:
    def __init__(self, root: Path, long_ids: bool = True, refused_port: int = 9, extra: str = "",
                 smtpd_port: int | None = None, resolve_names: bool = False, master_extra: tuple[str, ...] = ()):
        """`smtpd_port`: also listen for SMTP on 127.0.0.1:<port> (fast bulk submission).
        `master_extra`: further master.cf lines (services such as tlsproxy, more listeners).
        `resolve_names`: copy /etc/hosts and nsswitch.conf into the queue folder, the chroot
        of the stock smtp client, so names like `localhost` resolve there (as Debian does)."""
        self.root = Path(root)
        self.smtpd_port = smtpd_port
        self.resolve_names = resolve_names
        self.master_extra = master_extra
        self.etc, self.spool, self.maillog = self.root / "etc", self.root / "spool", self.root / "maillog"
        self.main_cf = MAIN_CF.format(root=self.root, port=refused_port, extra=extra,
                                      long_ids="yes" if long_ids else "no")

    def start(self) -> "PostfixInstance":
        for sub in ("etc", "spool", "data"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "data", "postfix")
        if self.resolve_names:
            (self.spool / "etc").mkdir(exist_ok=True)
            for name in ("hosts", "nsswitch.conf"):
                shutil.copy(f"/etc/{name}", self.spool / "etc" / name)
        main_cf = self.main_cf
        if self.smtpd_port:  # the loopback listener is an inet service
            main_cf = main_cf.replace("master_service_disable = inet\n", "mynetworks = 127.0.0.0/8\n")
        (self.etc / "main.cf").write_text(main_cf)
        master = Path("/etc/postfix/master.cf").read_text()
        lines = [ln for ln in master.splitlines() if not ln.startswith(("postlog", "#postlog"))]
        lines.append("postlog   unix-dgram n  -       n       -       1       postlogd")
        if self.smtpd_port:  # only our port: never the stock port 25 listener
            lines = [ln for ln in lines if not re.match(r"^smtp\s+inet\s", ln)]
            lines.append(f"127.0.0.1:{self.smtpd_port} inet n - n - - smtpd")
        lines += self.master_extra
        (self.etc / "master.cf").write_text("\n".join(lines) + "\n")
        self.postfix("start")
        return self

    def postfix(self, *args: str) -> None:
        # postfix(1) reports fatal errors only to syslog; `script` would give it a tty. The
        # log file names the problem anyway, so include its tail in the error.
        result = subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True, text=True)
        if result.returncode != 0:
            tail = self.maillog.read_text()[-2000:] if self.maillog.exists() else ""
            raise RuntimeError(f"postfix {' '.join(args)} failed: {result.stderr}{tail}")

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True)

    def send(self, recipients: list[str], sender: str = "sender@example.org", body: str = "test") -> None:
        message = f"From: {sender}\nSubject: agent test\n\n{body}\n"
        subprocess.run(["sendmail", "-C", str(self.etc), "-f", sender, *recipients], input=message,
                       text=True, check=True)

    def postqueue_json(self) -> list[dict]:
        out = subprocess.run(["postqueue", "-c", str(self.etc), "-j"], capture_output=True,
                             text=True, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_deferred(self, n: int, timeout: float = 60) -> list[dict]:
        """Wait until `n` messages sit in deferred with a reason on every recipient."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = self.postqueue_json()
            done = [e for e in entries if e["queue_name"] == "deferred"
                    and all("delay_reason" in r for r in e["recipients"])]
            if len(done) >= n:
                return entries
            time.sleep(0.2)
        raise TimeoutError(f"fewer than {n} deferred messages after {timeout} s")

    def hold(self, queue_id: str) -> None:
        subprocess.run(["postsuper", "-c", str(self.etc), "-h", queue_id], capture_output=True, check=True)
