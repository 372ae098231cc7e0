"""`mailagent lab sink start|stop|status|mode` and `mailagent lab mail [--json]`.

The lab dir is `mailagent.lab.paths.lab_dir()` ($MAILAGENT_LAB_DIR, default
~/.local/state/mailagent/lab). `lab sink start` comes back on the ports recorded in
`<lab_dir>/sink/config.json` by the previous start, so guests configured for them keep working.
"""

from __future__ import annotations

import argparse
import json

from mailagent.lab import sink, sink_store, state
from mailagent.lab.paths import lab_dir


def register_sink(lab_subparsers) -> None:
    """Add `sink ...` and `mail` under the `lab` command's sub-parsers."""
    sink_parser = lab_subparsers.add_parser("sink", help="the TLS+AUTH smarthost sink on this host")
    sub = sink_parser.add_subparsers(dest="sink_command", metavar="ACTION", required=True)
    start = sub.add_parser("start", help="start (or restart) the sink on its recorded ports")
    start.add_argument("--bind", help="address to listen on (default: as recorded, else 127.0.0.1)")
    start.add_argument("--hostname", help=f"certificate name (default: as recorded, else {sink.DEFAULT_HOSTNAME})")
    start.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop the sink").set_defaults(func=cmd_stop)
    status = sub.add_parser("status", help="whether it runs, its ports, mode and message count")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
    mode = sub.add_parser("mode", help="switch behaviour while running")
    mode.add_argument("mode", choices=sink_store.MODES, help="normal, tempfail (4xx), reject-auth "
                      "(535) or no-starttls (STARTTLS ports offer no STARTTLS)")
    mode.set_defaults(func=cmd_mode)
    mail = lab_subparsers.add_parser("mail", help="what the sink received")
    mail.add_argument("--json", action="store_true", help="print the records as a JSON list")
    mail.set_defaults(func=cmd_mail)


def cmd_start(args: argparse.Namespace) -> int:
    recorded = sink_store.read_json(sink_store.sink_dir(lab_dir()) / "config.json") or {}
    options = {k: recorded[k] for k in ("starttls_ports", "implicit_ports") if k in recorded}
    options["bind"] = args.bind or recorded.get("bind", "127.0.0.1")
    options["hostname"] = args.hostname or recorded.get("hostname", sink.DEFAULT_HOSTNAME)
    try:
        info = sink.spawn(lab_dir(), **options)
    except (sink.SinkError, OSError) as exc:
        print(f"lab sink start: {exc}")
        return 1
    _record_in_lab_state(info)
    ports = info["ports"]
    print(f"sink running (pid {info['pid']}) on {info['bind']}: STARTTLS {_ports(ports['starttls'])}, "
          f"SMTPS {_ports(ports['implicit'])}; user {info['username']}; CA {info['ca_cert']}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    sink.stop(lab_dir())
    _record_in_lab_state(None)
    print("sink stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    found = sink.status(lab_dir())
    if args.json:
        print(json.dumps(found, indent=2))
    elif found["running"]:
        ports = found["ports"]
        print(f"sink running (pid {found['pid']}) on {found['bind']}: STARTTLS {_ports(ports['starttls'])}, "
              f"SMTPS {_ports(ports['implicit'])}; mode {found['mode']}; {found['messages']} message(s)")
    else:
        print(f"sink not running; mode {found['mode']}; {found['messages']} message(s) recorded")
    return 0 if found["running"] else 1


def cmd_mode(args: argparse.Namespace) -> int:
    sink.set_mode(lab_dir(), args.mode)
    print(f"sink mode: {args.mode}")
    return 0


def cmd_mail(args: argparse.Namespace) -> int:
    records = sink.messages(lab_dir())
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for rec in records:
        print(mail_line(rec))
    if not records:
        print("no mail received")
    return 0


def mail_line(rec: dict) -> str:
    """One human line per message: when, how it came in, who logged in, envelope, subject."""
    tls = f"{rec['tls_version']}" if rec.get("tls") else "NO TLS"
    auth = f"{rec.get('auth_user')}/{rec.get('auth_mechanism')}" if rec.get("auth_user") else "no auth"
    to = ",".join(rec.get("rcpt_tos") or [])
    subject = (rec.get("headers") or {}).get("subject")
    return (f"{rec.get('received_at')} port {rec.get('port')} {tls} {auth} from {rec.get('peer')}: "
            f"<{rec.get('mail_from')}> -> {to} {subject!r}")


def _record_in_lab_state(info: dict | None) -> None:
    """Keep a running lab's state.json in step, so `lab status` shows the new pid and
    `lab down` stops a sink started by hand. Without a lab there is nothing to update."""
    try:
        current = state.load(lab_dir())
    except state.LabNotRunning:
        return
    current["sink"] = info
    state.save(current)


def _ports(ports: list[int]) -> str:
    return ",".join(str(p) for p in ports) or "-"
