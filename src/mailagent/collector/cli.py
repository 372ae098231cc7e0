"""`mailagent collector ...`: run the collector service."""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import sys
from pathlib import Path

from mailagent.collector.settings import ENV_PREFIX, SettingsError, load_settings

READ_TOKEN_ENV = f"{ENV_PREFIX}READ_TOKEN"  # the same variable sets the server's read_token


def register(subparsers) -> None:
    """Add `collector serve`, `collector check-config` and `collector fleet`."""
    parser = subparsers.add_parser("collector", help="the central collector service")
    sub = parser.add_subparsers(dest="collector_command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the API, dashboard and metrics")
    _common(serve)
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="validate the settings and print them as JSON")
    _common(check)
    check.set_defaults(func=_check)
    fleet = sub.add_parser("fleet", help="print the fleet summary from a running collector")
    fleet.add_argument("--url", default="http://127.0.0.1:8480", help="collector base URL")
    fleet.add_argument("--ca-file", metavar="PEM", help="CA to trust for an https URL")
    fleet.add_argument("--json", action="store_true", help="print the JSON answer instead")
    fleet.add_argument("--token-file", metavar="FILE", help="file holding the read (or admin) "
                       f"token; default: ${READ_TOKEN_ENV}, none with public_read")
    fleet.set_defaults(func=_fleet)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    parser.add_argument("--listen", metavar="HOST:PORT", help="address to serve on")
    parser.add_argument("--database", metavar="URL", help="SQLAlchemy database URL")


def _settings(args):
    try:
        return load_settings(args.config, listen=args.listen, database_url=args.database)
    except SettingsError as exc:
        for line in exc.problems:
            print(f"mailagent collector: {line}", file=sys.stderr)
        return None


def _check(args) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    print(settings.model_dump_json(indent=2))
    return 0


def _fleet(args) -> int:
    # Imported here, not above: every `mailagent` command loads this module, and only `fleet`
    # needs httpx and the dashboard's helpers (fastapi, jinja2): a second of start-up on a VM.
    import httpx

    from mailagent.collector import fleettext

    verify = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else True
    try:
        token = (Path(args.token_file).read_text() if args.token_file
                 else os.environ.get(READ_TOKEN_ENV, "")).strip()
    except OSError as exc:
        print(f"mailagent collector: --token-file: {exc}", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(args.url.rstrip("/") + "/api/v1/hosts", timeout=15, verify=verify,
                           headers=headers)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"mailagent collector: {args.url}: {exc}", file=sys.stderr)
        return 1
    listing = answer.json()
    print(json.dumps(listing, indent=2) if args.json else fleettext.render(listing))
    return 0


def _serve(args) -> int:
    settings = _settings(args)
    if settings is None:
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from mailagent.collector.server import serve  # here: uvicorn and the app load only for `serve`

    try:
        serve(settings)
    except Exception as exc:  # noqa: BLE001 - runtime failure: one line, exit 1
        print(f"mailagent collector: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
