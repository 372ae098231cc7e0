"""`python -m mailagent.agent run|status|keygen|register`: the agent's commands alone.

The service runs this rather than the `mailagent` console script, which loads every area's
commands (relay rendering, collector and lab settings): about 12 MB of resident memory the
resident agent never uses.
"""

from __future__ import annotations

import argparse
import sys

from mailagent.agent import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailagent.agent", description=__doc__.splitlines()[0])
    cli.register(parser.add_subparsers(dest="command", metavar="COMMAND"))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
