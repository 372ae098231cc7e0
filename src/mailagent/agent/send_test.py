"""`mailagent send-test`: submit one message to the local Postfix and follow it in the mail log.

    sendmail -f FROM TO        a fresh Message-ID, submitted like any program on the host would
    cleanup  QID: message-id=<that id>                               -> its queue id
    smtp     Verified TLS connection established to H[ip]:port: ...  -> the TLS of the delivery
    smtp     QID: to=<TO>, relay=H[ip]:port, ..., dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)

The log is read from the agent's own log source (the journal, or a mail.log file), from where
it ended when the message went in. The result, as `run()` returns it:

    {"result": "delivered", "queue_id": "4B1C12A0F3", "reply": "250 2.0.0 Ok: queued as 7D2F1C0042",
     "code": 250, "dsn": "2.0.0", "relay": "smtp.example.com[192.0.2.10]:2587",
     "smarthost_queue_id": "7D2F1C0042", "tls": {"trust": "Verified", "protocol": "TLSv1.3", ...},
     "auth_user": "apikey", "hint": "", ...}

`result` is delivered (status=sent), deferred (the reason, its reply code and the hint
`check-relay` gives for it; Postfix keeps retrying), bounced (status=bounced or expired) or
timeout (none of those within the timeout; `last_seen` says what was). Postfix logs failed SASL
logins only, so `auth_user` is the login the relay deploy configured, not a logged fact.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from email.utils import formatdate, make_msgid

from mailagent.agent.checks.log_stats import make_source
from mailagent.agent.maillog import TLS_SUMMARY, LogRecord
from mailagent.agent.reasons import classify
from mailagent.agent.runner import CommandFailed
from mailagent.agent.settings import SettingsError, load_settings
from mailagent.relay import deployed
from mailagent.relay.check import hint_for
from mailagent.relay.deployed import RelayTarget

ADDRESS = re.compile(r"^[^@\s<>,;\"']+@[A-Za-z0-9.-]+$")
_QUEUED = re.compile(r"^(?P<qid>[0-9A-Za-z]+): (?P<rest>.*)$")
_MESSAGE_ID = re.compile(r"^message-id=<?(?P<mid>[^>\s]*)>?")
_STATUS = re.compile(r"\bstatus=(?P<status>sent|deferred|bounced|expired)(?: \((?P<text>.*)\))?")
_RELAY = re.compile(r"\brelay=(?P<relay>[^,\s]+)")
_DSN = re.compile(r"\bdsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3})")
_CODE = re.compile(r"(?:^|said: )(?P<code>[245]\d\d)[ -]")
_QUEUED_AS = re.compile(r"queued as (?P<id>[0-9A-Za-z]+)")
_CIPHER = re.compile(r"(?P<protocol>TLSv[\d.]+|SSLv\d) with cipher (?P<cipher>\S+)")
RESULTS = {"sent": "delivered", "deferred": "deferred", "bounced": "bounced", "expired": "bounced"}
MAX_LINES = 30
POLL_SECONDS = 0.5


class SubmitFailed(Exception):
    """sendmail refused the message or could not run."""


@dataclass
class Trail:
    """What the log says about one message, fed record by record (pure)."""

    message_id: str
    queue_id: str | None = None
    outcome: dict | None = None
    lines: list[str] = field(default_factory=list)
    _tls: dict = field(default_factory=dict, repr=False)  # (program, pid) -> the last TLS summary

    @property
    def last_seen(self) -> str:
        return self.lines[-1] if self.lines else ""

    def add(self, record: LogRecord) -> None:
        if tls := TLS_SUMMARY.match(record.message):
            self._tls[(record.program, record.pid)] = _tls(tls)
            return
        queued = _QUEUED.match(record.message)
        if queued is None or self.outcome is not None:
            return
        if self.queue_id is None:
            found = _MESSAGE_ID.match(queued["rest"])
            if found is None or found["mid"] != self.message_id.strip("<>"):
                return
            self.queue_id = queued["qid"]
        if queued["qid"] == self.queue_id:
            self._seen(record, queued["rest"])

    def _seen(self, record: LogRecord, rest: str) -> None:
        status = _STATUS.search(rest)
        tls = self._tls.get((record.program, record.pid)) if status else None
        if tls:  # the connection it went over, logged by the same process just before
            self._line(record, tls["line"])
        self._line(record, record.message)
        if status is not None:
            self.outcome = outcome(rest, status, tls)

    def _line(self, record: LogRecord, message: str) -> None:
        if len(self.lines) < MAX_LINES:
            self.lines.append(f"{record.program}[{record.pid}]: {message}")


def outcome(rest: str, status: re.Match, tls: dict | None) -> dict:
    """The result fields of one status line (the text after "QID: ")."""
    text = status["text"] or f"{status['status']}: {rest.rpartition(status[0])[2].strip(', ')}"
    relay, dsn = _RELAY.search(rest), _DSN.search(rest)
    code = _CODE.search(text)
    reply = text[code.start("code"):] if code else text
    queued_as = _QUEUED_AS.search(reply) if status["status"] == "sent" else None
    return {"result": RESULTS[status["status"]], "reply": reply, "reason": text,
            "code": int(code["code"]) if code else None, "dsn": dsn["dsn"] if dsn else None,
            "relay": relay["relay"] if relay else None,
            "smarthost_queue_id": queued_as["id"] if queued_as else None, "tls": tls}


def _tls(match: re.Match) -> dict:
    cipher = _CIPHER.search(match["detail"])
    return {"trust": match["trust"], "peer": match["peer"],
            "protocol": cipher["protocol"] if cipher else None,
            "cipher": cipher["cipher"] if cipher else None, "line": match[0]}


def message(sender: str, to: str, hostname: str) -> tuple[str, str]:
    """(Message-ID, the message text) of one test mail."""
    message_id = make_msgid("mailagent-send-test", domain=hostname)
    text = (f"From: {sender}\nTo: {to}\nSubject: mailagent send-test from {hostname}\n"
            f"Date: {formatdate(localtime=True)}\nMessage-ID: {message_id}\n"
            f"Auto-Submitted: auto-generated\n\n"
            f"A test message from `mailagent send-test` on {hostname}: mail from this host\n"
            f"leaves through its smarthost.\n")
    return message_id, text


def sendmail(sender: str, to: str, text: str, command: tuple[str, ...] = ("sendmail",),
             timeout: float = 30) -> None:
    """Submit through Postfix's sendmail (the maildrop queue; no network listener needed)."""
    argv = [*command, "-i", "-f", sender, "--", to]
    try:
        done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SubmitFailed(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise SubmitFailed(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[:500]}")


def run(source, submit, sender: str, to: str, hostname: str, timeout: float, relay: RelayTarget | None,
        clock=time.monotonic, sleep=time.sleep) -> dict:
    """Submit one test mail and follow it until its status line or `timeout` seconds.

    `source` is a log source (read() -> (records, position), commit(position)); `submit(sender,
    to, text)` hands the message to Postfix; `relay` is relay.json (hints, port, username), None
    where no relay is deployed.
    """
    _, start = source.read()  # where the log ends now: only what follows is ours
    source.commit(start)
    message_id, text = message(sender, to, hostname)
    started = clock()
    submit(sender, to, text)
    trail = Trail(message_id)
    while True:
        records, position = source.read()
        source.commit(position)
        for record in records:
            trail.add(record)
        if trail.outcome is not None or clock() - started >= timeout:
            break
        sleep(POLL_SECONDS)
    return result(trail, relay, sender=sender, to=to, elapsed=clock() - started, timeout=timeout)


def result(trail: Trail, relay: RelayTarget | None, *, sender: str, to: str, elapsed: float, timeout: float) -> dict:
    """The run's result: the outcome with its hint, or a timeout with what was last seen."""
    found = trail.outcome or {"result": "timeout", "reply": None, "reason": None, "code": None,
                              "dsn": None, "relay": None, "smarthost_queue_id": None, "tls": None}
    hint = ""
    if found["result"] != "delivered" and found["reason"]:
        hint = hint_for(found["code"], found["reason"], _port(found["relay"], relay),
                        relay.hints if relay else {})
    return {**found, "message_id": trail.message_id, "queue_id": trail.queue_id, "from": sender,
            "to": to, "hint": hint, "reason_class": classify(found["reason"]).value
            if found["reason"] and found["result"] != "delivered" else None,
            "auth_user": relay.username if relay else None, "last_seen": trail.last_seen, "log": trail.lines,
            "elapsed_seconds": round(elapsed, 3), "timeout_seconds": timeout}


def _port(relay_field: str | None, relay: RelayTarget | None) -> int:
    if relay and relay.port:
        return relay.port
    tail = (relay_field or "").rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def summary(result: dict) -> str:
    """One line: the result and the smarthost's reply (what the fleet deploy prints per host)."""
    if result["result"] == "delivered":
        tls = result["tls"]
        extras = [f"{tls['trust']} TLS {tls['protocol'] or ''}".rstrip() if tls else "no TLS logged"]
        if result["auth_user"]:
            extras.append(f"AUTH {result['auth_user']}")
        return f"delivered: {result['reply']} ({', '.join(extras)})"
    if result["result"] == "timeout":
        seen = result["last_seen"] or (f"nothing logged about {result['message_id']} (the journal "
                                       "needs root or the systemd-journal group)")
        return f"timeout after {result['timeout_seconds']:g} s; last seen: {seen}"
    hint = f"; hint: {result['hint']}" if result["hint"] else ""
    return f"{result['result']}: {result['reply']}{hint}"


def format_result(result: dict) -> str:
    """The text `mailagent send-test` prints."""
    lines = [f"submitted {result['message_id']} from {result['from']} to {result['to']}"
             + (f" as queue id {result['queue_id']}" if result["queue_id"] else ""),
             summary(result)]
    if result["relay"]:
        lines.append(f"  relay: {result['relay']} (dsn {result['dsn']}, {result['elapsed_seconds']} s)")
    if result["tls"]:
        lines.append(f"  tls: {result['tls']['line']}")
    if result["result"] == "delivered" and result["auth_user"]:
        lines.append(f"  auth: {result['auth_user']} (the relay's login; Postfix logs only failed ones)")
    if result["result"] == "deferred" and result["queue_id"]:
        lines.append(f"  Postfix keeps it queued and retries; `postsuper -d {result['queue_id']}` drops it")
    return "\n".join(lines)


def usage_problems(args) -> list[str]:
    """Why the command cannot start (exit 2), one line each."""
    problems = [f"{flag}: {value!r} is not an address like someone@example.com"
                for flag, value in (("--to", args.to), ("--from", args.sender))
                if value is not None and not ADDRESS.match(value)]
    if args.timeout <= 0:
        problems.append("--timeout: must be more than 0 seconds")
    return problems


def command(args) -> int:
    """`mailagent send-test`: exit 0 delivered, 1 anything else, 2 bad usage or settings."""
    problems = usage_problems(args)
    try:
        settings = load_settings(args.settings)
        relay = deployed.read(settings.relay_settings_path)
    except SettingsError as exc:
        problems += exc.problems
    except deployed.RelayTargetError as exc:
        problems.append(str(exc))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    sender = args.sender or (relay and relay.sender_address) or f"root@{settings.host}"
    config = ("-C", str(settings.postfix_config_dir)) if settings.postfix_config_dir else ()
    with tempfile.TemporaryDirectory(prefix="mailagent-send-test-") as folder:
        source = make_source(settings.model_copy(update={"state_dir": folder}))
        try:
            found = run(source, lambda s, t, text: sendmail(s, t, text, ("sendmail", *config)),
                        sender, args.to, settings.host, args.timeout, relay)
        except SubmitFailed as exc:
            print(f"send-test: not submitted: {exc}", file=sys.stderr)
            return 1
        except (OSError, CommandFailed) as exc:
            print(f"send-test: cannot read the mail log ({settings.log_source}): {exc}; the "
                  "journal needs root or the systemd-journal group", file=sys.stderr)
            return 1
    print(json.dumps(found, indent=2) if args.json else format_result(found))
    return 0 if found["result"] == "delivered" else 1
