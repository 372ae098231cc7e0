"""mailagent: relay-only Postfix to an authenticated smarthost, a queue-health agent, a fleet collector.

One sub-command tree; each area (relay, agent, collector, lab, control) registers its commands.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage (one line per problem).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Each area's `cli` module has `register(subparsers)`, which adds its sub-commands and sets
# `func` (taking the parsed args, returning an exit code) on each of them.
# An area whose subpackage this install leaves out (fleet hosts get the agent's share only) is
# skipped; a missing dependency of an area that is there still fails loudly.
AREAS = ("mailagent.relay.cli", "mailagent.agent.cli", "mailagent.collector.cli", "mailagent.lab.cli",
         "mailagent.control.cli", "mailagent.control.pki_cli", "mailagent.control.dnscheck.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailagent", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        module = _area(area)
        if module is not None:
            module.register(subparsers)
    return parser


def _area(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and f"{name}.".startswith(f"{exc.name}.") and exc.name != "mailagent":
            return None  # the area's module or one of its packages is not in this install
        raise


# Modules only an extra brings (pyproject.toml), and that extra: a command that needs one says
# what to install. The lab's extra brings deploy's and collector's too.
EXTRAS = {"httpx": "agent",
          "pyinfra": "deploy", "pyinfra_cli": "deploy", "paramiko": "deploy", "dns": "deploy",
          "packaging": "deploy",
          "fastapi": "collector", "uvicorn": "collector", "sqlalchemy": "collector",
          "alembic": "collector", "psycopg": "collector", "nacl": "collector",
          "aiosmtpd": "lab", "pytest": "test", "hypothesis": "test"}
# Commands whose own extra brings all the others they need: named instead of the module's.
COMMAND_EXTRAS = {"lab": "lab"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        extra = COMMAND_EXTRAS.get(args.command, extra)
        print(f"mailagent {args.command}: needs the {extra} extra (missing module {exc.name}): "
              f"pip install 'mailagent[{extra}]' (from a checkout: pip install -e '.[{extra}]')",
              file=sys.stderr)
        return 2
