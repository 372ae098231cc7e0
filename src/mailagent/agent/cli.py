"""`mailagent run`, `mailagent status [--json]`, `mailagent keygen --key PATH`, `mailagent register`."""

from __future__ import annotations

import logging
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
    cmd.add_argument("--replace", action="store_true", help="replace a different registered key")
    cmd.set_defaults(func=cmd_register)


def _settings(args):
    try:
        return load_settings(args.settings)
    except SettingsError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return None


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
    from mailagent.agent.register import RegistrationFailed, register
    settings = _settings(args)
    if settings is None:
        return 2
    token = sys.stdin.readline().strip()
    if not token:
        print("registration token: expected on stdin", file=sys.stderr)
        return 2
    try:
        answer = register(settings, token, args.replace, args.url)
    except (RegistrationFailed, OSError) as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 1
    print(f"registered {settings.host} with {args.url or settings.collector_url} {answer or ''}".strip())
    return 0
