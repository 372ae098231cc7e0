"""`mailagent render`, `mailagent providers` and `mailagent check-relay`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mailagent.relay import check, deployed
from mailagent.relay.presets import providers
from mailagent.relay.parse import parse_profile
from mailagent.relay.profile import ProfileError

RELAY_SETTINGS = Path("/etc/mailagent/relay.json")
MIN_POSTFIX = (3, 5)


def register(subparsers) -> None:
    cmd = subparsers.add_parser("render", help="validate a relay profile and write its Postfix files")
    cmd.add_argument("--profile", required=True, type=Path, help="JSON file: the `relay` host data")
    cmd.add_argument("--out", required=True, type=Path, help="folder to write main.cf and maps to")
    cmd.add_argument("--hostname", default="localhost", help="the target's host name")
    cmd.add_argument("--os-family", default="debian", choices=("debian", "rhel"))
    cmd.add_argument("--no-ipv6", action="store_true", help="the target has no IPv6")
    cmd.add_argument("--postfix", default="3.10", metavar="X.Y",
                     help="the target's Postfix version (3.5 or later; default 3.10)")
    cmd.set_defaults(func=cmd_render)

    cmd = subparsers.add_parser("providers", help="list the provider presets")
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(func=cmd_providers)

    cmd = subparsers.add_parser("check-relay", help="connect, EHLO, TLS, AUTH, QUIT to the smarthost")
    cmd.add_argument("--settings", type=Path, default=RELAY_SETTINGS)
    cmd.add_argument("--sasl-map", default="/etc/postfix/sasl_passwd")
    cmd.add_argument("--timeout", type=float, default=15.0)
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(func=cmd_check_relay)


def load_profile_file(path: Path):
    """Read and validate a profile file; ProfileError lists every problem."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ProfileError([f"{path}: {exc}"]) from None
    return parse_profile(data)


def cmd_render(args) -> int:
    # Here, not above: every `mailagent` command loads this module, only `render` needs jinja2.
    from mailagent.relay.render import SECRET_FILES, render
    from mailagent.relay.target import Target

    try:
        version = postfix_version(args.postfix)
        profile = load_profile_file(args.profile)
    except ProfileError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    target = Target(hostname=args.hostname, os_family=args.os_family,
                    has_ipv6=not args.no_ipv6, postfix_version=version)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in render(profile, target).items():
        path = args.out / name
        path.write_text(content)
        path.chmod(0o600 if name in SECRET_FILES else 0o644)
        print(path)
    return 0


def postfix_version(text: str) -> tuple[int, int]:
    """"3.7" or "3.7.11" (what `postconf -h mail_version` prints) -> (3, 7)."""
    parts = text.strip().split(".")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
        raise ProfileError([f"--postfix: {text!r} is not a Postfix version like 3.7"])
    version = (int(parts[0]), int(parts[1]))
    if version < MIN_POSTFIX:
        raise ProfileError([f"--postfix: {text} is older than Postfix 3.5, the oldest supported"])
    return version


def cmd_providers(args) -> int:
    rows = [_provider_row(p) for p in providers().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'provider':<20} {'host':<40} {'STARTTLS':<14} {'implicit TLS':<13} user")
    for row in rows:
        host = row["host"] or ", ".join(f"{k}: {v}" for k, v in row["regions"].items()) or "(yours)"
        user = row["username"] or ("(none)" if row["credentials"] == "none" else "")
        print(f"{row['name']:<20} {host:<40} {_ports(row['starttls_ports']):<14} "
              f"{_ports(row['implicit_ports']):<13} {user}")
        if row["warning"]:
            print(f"{'':<20} warning: {row['warning']}")
    return 0


def _provider_row(provider) -> dict:
    return {
        "name": provider.name,
        "title": provider.title,
        "host": provider.host or provider.host_template or (
            provider.host_suffix and f"<yours>{provider.host_suffix}"),
        "regions": provider.regions,
        "starttls_ports": list(provider.starttls_ports),
        "implicit_ports": list(provider.implicit_ports),
        "default_port": provider.default_port,
        "tls_modes": {str(p): provider.tls_for_port(p) for p in provider.ports},
        "username": provider.username,
        "username_note": provider.username_note,
        "credentials": provider.credentials,
        "note": provider.note,
        "warning": provider.warning,
    }


def _ports(ports) -> str:
    return ", ".join(map(str, ports)) or "-"


def cmd_check_relay(args) -> int:
    try:
        relay = deployed.read(args.settings)
    except deployed.RelayTargetError as exc:
        print(f"{exc} (deploy the relay first)", file=sys.stderr)
        return 2
    if relay is None:
        print(f"{args.settings}: no such file (deploy the relay first)", file=sys.stderr)
        return 2
    argv = ["--host", relay.host, "--port", str(relay.port), "--tls", relay.tls,
            "--verify", relay.tls_verify, "--timeout", str(args.timeout),
            "--hints-json", json.dumps(relay.hints)]
    if relay.ca_file:
        argv += ["--ca-file", relay.ca_file]
    if relay.username and os.path.exists(args.sasl_map):
        argv += ["--sasl-map", args.sasl_map]
    if args.json:
        argv.append("--json")
    return check.main(argv)
