"""What `mailagent drain` changes in Postfix (pure), and the thin wrapper that runs the commands.

Refusing new mail, checked on Postfix 3.7 (tests/agent/test_drain.py):

    authorized_submit_users =          sendmail/postdrop refuse everyone, root included, with
                                       exit 75 (EX_TEMPFAIL): applications retry, nothing is lost
    smtpd_client_restrictions = check_client_access static:{450 4.3.2 ...}
                                       the loopback smtpd answers RCPT with 450; also set on every
                                       master.cf service that overrides it (postconf -P)

Mail already in maildrop is still picked up, so it is flushed with the rest.

Handing over (only when mail remains after --timeout and drain.relay is set):

    relayhost = [hub]:1587, smtp_fallback_relay = (none), smtp_tls_wrappermode = yes|no,
    smtp_tls_security_level = secure (+ smtp_tls_CAfile) or encrypt, smtp_tls_policy_maps =
    (none, if set), smtp_host_lookup = native (/etc/hosts names such as a lab hub resolve)

Commands are run with `-c <config_dir>` when one is given and a timeout, so a wedged Postfix
cannot hang the drain.

What Postfix logged, since the drain started: a message leaving the queue is not proof it was
delivered (a 5xx from the relay bounces it to the sender), so DrainLog reads Postfix's own status
lines from the agent's `log_source` (a file, or the journal), from where the log ended when the
drain started (file size, or the journal's last cursor); phases are told apart by difference.

    DrainLog(source).totals()  ->  {"sent": 4, "bounced": 1, "expired": 0}   or None (unreadable)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from mailagent.agent.maillog import DeliveryCounter, parse_journal_entry, parse_syslog_line

REFUSE_TEXT = "450 4.3.2 this host is being drained and takes no new mail; try again later"
REFUSE_RESTRICTION = f"check_client_access static:{{{REFUSE_TEXT}}}"
COMMAND_TIMEOUT = 60
JOURNAL_TIMEOUT = 30
OUTCOMES = ("sent", "bounced", "expired")
# What handover_edits may change (read first, for the output's before -> after).
HANDOVER_PARAMS = ("relayhost", "smtp_fallback_relay", "smtp_tls_wrappermode",
                   "smtp_tls_security_level", "smtp_tls_CAfile", "smtp_tls_policy_maps",
                   "smtp_host_lookup")
# `postconf -P` lines: service/type/parameter = value
_SERVICE_PARAM = re.compile(r"^(?P<service>[^/\s]+/[^/\s]+)/(?P<param>[a-z0-9_]+)\s*=")


class PostfixCommandError(RuntimeError):
    """A Postfix command failed; the message names it and carries its stderr."""


def refuse_edits() -> dict[str, str]:
    """main.cf values that stop local submission (sendmail and the loopback smtpd)."""
    return {"authorized_submit_users": "", "smtpd_client_restrictions": REFUSE_RESTRICTION}


def overriding_services(postconf_p: str, param: str = "smtpd_client_restrictions") -> list[str]:
    """master.cf services ("submission/inet") that set `param` with -o, from `postconf -P`."""
    found = []
    for line in postconf_p.splitlines():
        match = _SERVICE_PARAM.match(line.strip())
        if match and match["param"] == param:
            found.append(match["service"])
    return sorted(set(found))


def handover_edits(relay: str, tls: str, ca_file: str | None, current: dict[str, str]) -> dict[str, str]:
    """main.cf values that aim Postfix at `relay`; `current` holds the present values."""
    edits = {"relayhost": relay, "smtp_fallback_relay": "",
             "smtp_tls_wrappermode": "yes" if tls == "implicit" else "no",
             "smtp_tls_security_level": "secure" if ca_file else "encrypt",
             "smtp_host_lookup": "native"}
    if ca_file:
        edits["smtp_tls_CAfile"] = ca_file
    if current.get("smtp_tls_policy_maps"):
        # A policy for the old smarthost must not apply (or a stale one for the hub).
        edits["smtp_tls_policy_maps"] = ""
    return edits


def changed(before: dict[str, str], edits: dict[str, str]) -> list[str]:
    """"name: old -> new" for every edit that changes a value (what the output lists)."""
    return [f"{name}: {before.get(name, '') or '(empty)'} -> {value or '(empty)'}"
            for name, value in edits.items() if before.get(name, "") != value]


class PostfixControl:
    """postconf / postfix / postqueue / postsuper for one Postfix instance."""

    def __init__(self, config_dir: Path | None = None):
        self.config_dir = config_dir

    def _run(self, *argv: str, stdin: str | None = None) -> str:
        cmd = [argv[0], *(["-c", str(self.config_dir)] if self.config_dir else []), *argv[1:]]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, input=stdin,
                                    timeout=COMMAND_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostfixCommandError(f"{' '.join(cmd)}: {exc}") from None
        if result.returncode != 0:
            raise PostfixCommandError(f"{' '.join(cmd)} exited {result.returncode}: "
                                      f"{result.stderr.strip()[:500]}")
        return result.stdout

    def get(self, *names: str) -> dict[str, str]:
        """Current main.cf values (defaults included) of `names`."""
        out = self._run("postconf", *names)
        return {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in out.splitlines())}

    def set(self, edits: dict[str, str]) -> None:
        if edits:
            self._run("postconf", "-e", *(f"{k}={v}" for k, v in edits.items()))

    def services_text(self) -> str:
        return self._run("postconf", "-P")

    def set_service(self, service: str, param: str, value: str) -> None:
        self._run("postconf", "-P", "-e", f"{service}/{param}={value}")

    def queue_directory(self) -> Path:
        return Path(self._run("postconf", "-h", "queue_directory").strip())

    def reload(self) -> None:
        self._run("postfix", "reload")

    def flush(self) -> None:
        self._run("postqueue", "-f")

    def requeue(self) -> None:
        """Requeue what waits for delivery (not hold: held mail stays held) so the new
        relayhost applies to every message."""
        self._run("postsuper", "-r", "ALL", "deferred", "active", "incoming")

    def queue_json(self) -> list[str]:
        return self._run("postqueue", "-j").splitlines()


class DrainLog:
    def __init__(self, source: str, journalctl: str = "journalctl"):
        self.source, self.journalctl = source, journalctl
        self.error: str | None = None
        try:
            self.start = self._journal_start() if source == "journal" else os.stat(source).st_size
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.error, self.start = f"{type(exc).__name__}: {exc}", None

    def totals(self) -> dict[str, int] | None:
        """Recipients sent/bounced/expired since the start; None when the log cannot be read."""
        if self.error:
            return None
        counter = DeliveryCounter()
        try:
            for record in self._records():
                counter.add(record)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return None
        return {name: getattr(counter, name) for name in OUTCOMES}

    def _records(self):
        if self.source != "journal":
            with open(self.source, "rb") as fh:
                fh.seek(self.start)
                lines = fh.read().decode(errors="replace").splitlines()
            return filter(None, map(parse_syslog_line, lines))
        entries = self._journal(*self._after())
        return filter(None, map(parse_journal_entry, entries))

    def _journal_start(self) -> dict:
        last = self._journal("-n", "1")
        return {"cursor": last[-1]["__CURSOR"]} if last else {"since": int(time.time())}

    def _after(self) -> list[str]:
        if "cursor" in self.start:
            return [f"--after-cursor={self.start['cursor']}"]
        return [f"--since=@{self.start['since']}"]

    def _journal(self, *args: str) -> list[dict]:
        out = subprocess.run([self.journalctl, "-o", "json", "--no-pager", "SYSLOG_FACILITY=2", *args],
                             capture_output=True, text=True, timeout=JOURNAL_TIMEOUT, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def difference(after: dict[str, int] | None, before: dict[str, int] | None) -> dict[str, int] | None:
    """Outcomes between two totals (None when either is unknown)."""
    if after is None or before is None:
        return None
    return {name: after[name] - before.get(name, 0) for name in OUTCOMES}
