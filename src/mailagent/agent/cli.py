"""`mailagent run`, `status [--json]`, `keygen --key PATH`, `register`, `drain [--timeout S] [--json]`,
`send-test --to ADDR`."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from mailagent.agent.settings import SettingsError, load_settings


def register(subparsers) -> None:
    cmd = subparsers.add_parser("run", help="the queue-health agent service loop")
    cmd.add_argument("--settings", type=Path, help="TOML settings (default /etc/mailagent/agent.toml)")
    cmd.add_argument("--once", action="store_true", help="run one cycle and exit")
    cmd.set_defaults(func=cmd_run)

    cmd = subparsers.add_parser("status", help="queue figures and last report of the local agent")
    cmd.add_argument("--settings", type=Path)
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(func=cmd_status)

    cmd = subparsers.add_parser("keygen", help="make this host's signing key; print its public key")
    cmd.add_argument("--key", type=Path, required=True, help="where to write the private key")
    cmd.add_argument("--force", action="store_true", help="replace an existing key")
    cmd.set_defaults(func=cmd_keygen)

    cmd = subparsers.add_parser("register", help="register this host's public key with the collector "
                                "(registration token on stdin)")
    cmd.add_argument("--settings", type=Path)
    cmd.add_argument("--url", help="collector URL (default: collector_url from the settings)")
    cmd.add_argument("--replace", action="store_true", help="replace a different registered key "
                     "(needs the admin token: stdin's second line, or its only one)")
    cmd.set_defaults(func=cmd_register)

    cmd = subparsers.add_parser("drain", help="make this host safe to remove: refuse new mail, empty "
                                "the queue (handing the rest to drain.relay); exit 0 only when empty")
    cmd.add_argument("--settings", type=Path)
    cmd.add_argument("--timeout", type=float, default=120, metavar="S",
                     help="seconds to wait for the smarthost to take the queue (default 120)")
    cmd.add_argument("--handover-timeout", type=float, default=120, metavar="S",
                     help="seconds to wait for drain.relay to take the rest (default 120)")
    cmd.add_argument("--config-dir", type=Path, metavar="DIR",
                     help="Postfix config directory (postconf -c; default: postfix_config_dir)")
    cmd.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
    cmd.set_defaults(func=cmd_drain)

    cmd = subparsers.add_parser("send-test", help="send a test mail through the local Postfix and "
                                "follow it in the mail log to the smarthost's reply; exit 0 only "
                                "when delivered")
    cmd.add_argument("--to", required=True, metavar="ADDR", help="the recipient")
    cmd.add_argument("--from", dest="sender", metavar="ADDR", help="the envelope and header "
                     "sender (default: the relay's sender_address, else root@<host>)")
    cmd.add_argument("--timeout", type=float, default=60, metavar="S",
                     help="seconds to wait for the result (default 60)")
    cmd.add_argument("--settings", type=Path)
    cmd.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    cmd.set_defaults(func=cmd_send_test)


def _settings(args):
    try:
        return load_settings(args.settings)
    except SettingsError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return None


# Each command imports its own code: every `mailagent` command on a host loads this module, and
# the service loop's (httpx, the checks), registration's and drain's modules cost a fleet host's
# emulated or small CPU tenths of a second each that `status` or `send-test` would pay for nothing.
def cmd_run(args) -> int:
    from mailagent.agent.service import Agent, install_signal_handlers
    settings = _settings(args)
    if settings is None:
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        agent = Agent(settings)
    except (OSError, ValueError) as exc:
        print(f"key_path: cannot load {settings.key_path}: {exc}", file=sys.stderr)
        return 2
    if args.once:
        agent.cycle()
        return 0
    install_signal_handlers(agent.stop)
    if settings.metrics_listen:
        from mailagent.agent.metrics_http import serve
        serve(settings.metrics_listen, lambda: agent.metrics_text)
    agent.run_forever()
    return 0


def cmd_status(args) -> int:
    from mailagent.agent import status
    settings = _settings(args)
    if settings is None:
        return 2
    state = status.collect(settings)
    print(status.as_json(state) if args.json else status.format_status(state))
    return 0 if state["report"] else 1


def cmd_keygen(args) -> int:
    from mailagent import signing
    if args.key.exists() and not args.force:
        key = signing.load_private_key(args.key)
    else:
        try:
            key = signing.generate_key(args.key)
        except OSError as exc:
            print(f"--key: {exc}", file=sys.stderr)
            return 1
    print(signing.public_key_text(key))
    return 0


def cmd_register(args) -> int:
    """Tokens on stdin: the registration token, then optionally the admin token (the deploy's),
    which replaces a different registered key (a rebuilt host)."""
    from mailagent.agent.register import REPLACED, RegistrationFailed, register, register_or_replace
    settings = _settings(args)
    if settings is None:
        return 2
    token, admin = sys.stdin.readline().strip(), sys.stdin.readline().strip() or None
    if not token:
        print("registration token: expected on stdin", file=sys.stderr)
        return 2
    url = args.url or settings.collector_url
    try:
        if args.replace:
            answer, replaced = register(settings, admin or token, replace=True, url=args.url), True
        else:
            answer, replaced = register_or_replace(settings, token, admin, args.url)
    except (RegistrationFailed, OSError) as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 1
    print(f"{settings.host}: {REPLACED}" if replaced and answer.get("result") == "replaced"
          else f"registered {settings.host} with {url} {answer or ''}".strip())
    return 0


def drain_problems(settings, args, euid: int) -> list[str]:
    """Why drain cannot start (exit 2), one line each."""
    problems = []
    if euid != 0:
        problems.append("mailagent drain: must run as root (it changes the Postfix configuration)")
    if args.timeout < 0 or args.handover_timeout < 0:
        problems.append("--timeout/--handover-timeout: must be >= 0")
    config_dir = args.config_dir or settings.postfix_config_dir
    if config_dir is not None and not (Path(config_dir) / "main.cf").is_file():
        problems.append(f"--config-dir: no main.cf in {config_dir}")
    if settings.drain.ca_file and not Path(settings.drain.ca_file).is_file():
        problems.append(f"drain_ca_file: no such file {settings.drain.ca_file}")
    return problems


def cmd_drain(args) -> int:
    from mailagent.agent import drain
    from mailagent.agent.drain_postfix import PostfixCommandError, PostfixControl
    settings = _settings(args)
    if settings is None:
        return 2
    problems = drain_problems(settings, args, os.geteuid())
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else \
        (lambda line: print(line, flush=True))
    options = drain.DrainOptions(timeout=args.timeout, handover_timeout=args.handover_timeout)
    postfix = PostfixControl(args.config_dir or settings.postfix_config_dir)
    try:
        result = drain.Drainer(settings, postfix, options, say).run()
    except PostfixCommandError as exc:
        print(f"drain: {exc} (nothing deleted; Postfix may already refuse new mail)", file=sys.stderr)
        return 1
    if result.exit_code == 0:
        if stopped := drain.stop_agent_service():
            say(f"agent: {stopped}")
        result.collector = drain.notify_collector(settings, result.remaining)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print("\n".join(drain.format_result(result, settings)))
    return result.exit_code


def cmd_send_test(args) -> int:
    from mailagent.agent import send_test
    return send_test.command(args)
