"""`mailagent lab ...`: bring the QEMU lab up and down, show it, and run commands on its VMs.

    mailagent lab up [--debian 13|12] [--hosts N] [--hub] [--extra-host NAME=12 ...]
                     [--no-sink] [--no-collector]
    mailagent lab down
    mailagent lab status [--json]
    mailagent lab ssh HOST [-- CMD...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from mailagent.lab import state as lab_state
from mailagent.lab.image import DEFAULT_DEBIAN, SUITES
from mailagent.lab.sink_cli import register_sink


def register(subparsers) -> None:
    lab = subparsers.add_parser("lab", help="the local QEMU lab of Debian 13 (or 12) VMs")
    commands = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")

    up = commands.add_parser("up", help="build/reuse the image, start the sink, boot the VMs")
    up.add_argument("--hosts", type=int, default=2, help="number of relay VMs (relay1..relayN)")
    up.add_argument("--hub", action="store_true", help="also boot a `hub` VM")
    up.add_argument("--debian", choices=sorted(SUITES), default=DEFAULT_DEBIAN,
                    help=f"Debian release of the VMs (default {DEFAULT_DEBIAN}: "
                         f"{SUITES[DEFAULT_DEBIAN].name})")
    up.add_argument("--extra-host", action="append", default=[], metavar="NAME=VERSION",
                    help="one more relay VM on its own release, e.g. old1=12 (repeatable)")
    up.add_argument("--no-sink", action="store_true", help="do not start the smarthost sink")
    up.add_argument("--no-collector", action="store_true", help="do not start the collector")
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop every VM and the sink, remove the overlays")
    down.set_defaults(func=cmd_down)

    status = commands.add_parser("status", help="the running lab: VMs, ports, sink")
    status.add_argument("--json", action="store_true", help="print the state file's JSON")
    status.set_defaults(func=cmd_status)

    shell = commands.add_parser("ssh", help="run a command on a VM as root (a shell without one)")
    shell.add_argument("host", help="VM name, e.g. relay1")
    shell.add_argument("cmd", nargs=argparse.REMAINDER, help="command after `--`")
    shell.set_defaults(func=cmd_ssh)

    register_sink(commands)
    lab.set_defaults(func=lambda _args: (lab.print_help(sys.stderr), 2)[1])


def _progress(started: float):
    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    return say


# The commands import vm and ssh themselves: they load paramiko (most of a second under emulation),
# which every other `mailagent` command would pay for if this module imported it.
def cmd_up(args) -> int:
    from mailagent.lab import vm

    if args.hosts < 1 and not args.hub:
        print("hosts: must be at least 1 (or give --hub)", file=sys.stderr)
        return 2
    if args.hosts < 0:
        print("hosts: must not be negative", file=sys.stderr)
        return 2
    extra = dict(item.partition("=")[::2] for item in args.extra_host)
    started = time.monotonic()
    try:
        state = vm.up(hosts=args.hosts, hub=args.hub, sink=not args.no_sink,
                      collector=not args.no_collector, progress=_progress(started),
                      debian=args.debian, extra_hosts=extra)
    except ValueError as exc:  # a bad --extra-host
        print(f"lab up: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:  # LabError, VMError, ImageError, SinkError
        print(f"lab up failed: {exc}", file=sys.stderr)
        return 1
    print(f"lab up in {time.monotonic() - started:.0f}s: {len(state['hosts'])} VM(s) in {state['lab_dir']}")
    print("  deploy: pyinfra inventories/lab.py deploy/site.py    stop: mailagent lab down")
    return 0


def cmd_down(args) -> int:
    from mailagent.lab import vm

    started = time.monotonic()
    try:
        vm.down(progress=_progress(started))
    except lab_state.LabNotRunning as exc:
        print(exc, file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as exc:
        print(f"lab down failed: {exc}", file=sys.stderr)
        return 1
    print(f"lab down in {time.monotonic() - started:.1f}s")
    return 0


def cmd_status(args) -> int:
    from mailagent.lab import vm

    try:
        state = lab_state.load()
    except lab_state.LabNotRunning as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    print(f"lab {state['lab_dir']} ({state['accel']})")
    for entry in state["hosts"]:
        alive = "running" if vm.is_running(entry["pid"], entry["overlay"]) else "STOPPED"
        release = f"debian {entry['os']['version']} ({entry['os']['suite']})"
        print(f"  {entry['name']:<8} {entry['group']:<7} {release:<19} {alive:<8} pid {entry['pid']}  "
              f"ssh 127.0.0.1:{entry['ssh_port']}  smtp 127.0.0.1:{entry['smtp_port']}")
    sink = state["sink"]
    print(f"  sink     {sink.get('hostname')} on {sink.get('bind')} ports {sink.get('ports')}" if sink
          else "  sink     (none)")
    return 0


def cmd_ssh(args) -> int:
    from mailagent.lab import ssh

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    try:
        state = lab_state.load()
        entry = lab_state.host(state, args.host)
    except (lab_state.LabNotRunning, KeyError) as exc:
        print(str(exc).strip("'\""), file=sys.stderr)
        return 1
    if not cmd:
        # An interactive shell wants a real terminal: hand over to OpenSSH.
        os.execvp("ssh", ["ssh", "-i", entry["ssh_key"], "-p", str(entry["ssh_port"]),
                          "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                          "-o", "LogLevel=ERROR", f"root@{entry['ssh_host']}"])
    rc, out, err = ssh.run(state, args.host, cmd if len(cmd) > 1 else cmd[0], timeout=3600)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc
