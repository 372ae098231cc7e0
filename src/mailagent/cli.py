"""The `mailagent` command: one sub-command tree, each area registering its own commands.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage (one line per problem).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Each area's `cli` module has `register(subparsers)`, which adds its sub-commands and sets
# `func` (taking the parsed args, returning an exit code) on each of them.
AREAS = ("mailagent.relay.cli", "mailagent.agent.cli", "mailagent.collector.cli", "mailagent.lab.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailagent", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        importlib.import_module(area).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)
