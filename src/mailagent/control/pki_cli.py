"""`mailagent pki init [DIR]`: make the fleet's CA on the control machine, before any deploy reads it.

The collector's certificate (`collector_server.tls.ca_dir`) is issued from it and the agents trust
it (`collector.ca_file`). An existing CA is kept (and checked: a key that does not match its
certificate is refused), so the command is safe to run before every deploy.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mailagent import pki

DEFAULT_DIR = Path("pki/fleet-ca")
CA_NAME = "mailagent fleet CA"


def register(subparsers) -> None:
    cmd = subparsers.add_parser("pki", help="the fleet CA on the control machine")
    commands = cmd.add_subparsers(dest="pki_command", metavar="PKI_COMMAND")
    init = commands.add_parser("init", help="make the fleet CA in DIR (kept if it is already there)")
    init.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR,
                      help=f"CA folder (default {DEFAULT_DIR}): ca.pem, ca.key (0600)")
    init.add_argument("--name", default=CA_NAME, help=f"the CA's common name ({CA_NAME!r})")
    init.set_defaults(func=cmd_init)
    cmd.set_defaults(func=lambda _args: (cmd.print_help(sys.stderr), 2)[1])


def cmd_init(args) -> int:
    existed = (args.dir / pki.CA_CERT).exists()
    try:
        cert, key = pki.create_ca(args.dir, args.name)
    except (pki.PkiError, OSError, ValueError) as exc:  # ValueError: a file that is not PEM
        print(f"mailagent pki init: {exc}", file=sys.stderr)
        return 1
    print(f"{'kept' if existed else 'made'} the fleet CA: {cert} (key {key}, 0600)")
    return 0
