"""`mailagent dns-check`: SPF, DKIM, DMARC and MX readiness of sender domains.

    mailagent dns-check --inventory inventories/production.py [--json]
    mailagent dns-check example.com --provider ses --region eu-west-1 --selector TOKEN ...

Exit 0 when nothing fails (warnings allowed), 1 when a finding fails, 2 on bad usage or an
inventory that cannot be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from mailagent.control.dnscheck.providers import facts_for
from mailagent.control.dnscheck.senders import Sender, route_of
from mailagent.relay.profile import RelayProfile, is_domain


def register(subparsers) -> None:
    cmd = subparsers.add_parser("dns-check", help="SPF/DKIM/DMARC/MX readiness of sender domains")
    cmd.add_argument("domains", nargs="*", metavar="DOMAIN", help="sender domains to check")
    cmd.add_argument("--inventory", type=Path, help="check every sender domain this inventory uses")
    cmd.add_argument("--provider", default="custom", help="the provider DOMAIN's mail goes through")
    cmd.add_argument("--region", help="its region (SES: e.g. eu-west-1)")
    cmd.add_argument("--smarthost", help="hub or custom smarthost name whose addresses SPF must allow")
    cmd.add_argument("--selector", action="append", default=[], help="DKIM selector (repeatable)")
    cmd.add_argument("--nameserver", metavar="IP[:PORT]",
                     help="ask this nameserver (default: each host's dns_nameserver, else the system's)")
    cmd.add_argument("--timeout", type=float, default=5.0, help="seconds per query")
    cmd.add_argument("--json", action="store_true")
    cmd.set_defaults(func=cmd_dns_check)


def cmd_dns_check(args) -> int:
    # Here, not above: every `mailagent` command loads this module; dnspython loads for dns-check.
    from mailagent.control.dnscheck.checks import check_all, check_hosts
    from mailagent.control.dnscheck.resolve import DnsGuardError, Resolver, parse_nameserver

    try:
        if args.nameserver:
            parse_nameserver(args.nameserver)

        def make_resolver(nameserver):
            return Resolver(nameserver, timeout=args.timeout)

        if args.inventory:
            findings, senders = _inventory(args, make_resolver, check_hosts)
        else:
            senders = _named(args)
            findings = check_all(senders, [], make_resolver(args.nameserver))
    except _UsageError as exc:
        print("\n".join(exc.args[0]), file=sys.stderr)
        return 2
    except (DnsGuardError, ValueError) as exc:
        print(f"mailagent dns-check: {exc}", file=sys.stderr)
        return 2
    _print(findings, senders, args.json)
    return 1 if any(f.status == "fail" for f in findings) else 0


class _UsageError(Exception):
    """args[0]: one line per problem."""


def _inventory(args, make_resolver, check_hosts):
    from mailagent.control.dnscheck.inventory import InventoryError, load  # pyinfra: --inventory only

    if args.domains:
        raise _UsageError(["mailagent dns-check: give DOMAIN or --inventory, not both"])
    try:
        entries, settings = load(args.inventory)
    except InventoryError as exc:
        raise _UsageError(exc.problems) from None
    return check_hosts(entries, lambda name: args.nameserver or settings[name].dns_nameserver,
                       make_resolver)


def _named(args) -> list:
    if not args.domains:
        raise _UsageError(["mailagent dns-check: give one or more DOMAINs, or --inventory FILE"])
    problems = [f"{d}: not a domain name" for d in args.domains if not is_domain(d)]
    try:
        profile = RelayProfile.model_validate({"provider": args.provider, "region": args.region,
                                               "host": args.smarthost})
    except ValidationError as exc:
        raise _UsageError(problems + [f"--provider: {e['msg']}" for e in exc.errors()]) from None
    region = profile.preset.region_problem(args.region)
    if region:
        problems.append(f"--region: {region}")
    if not facts_for(profile.provider).spf_include and not args.smarthost:
        problems.append(f"--smarthost: needed with --provider {profile.provider} (whose addresses SPF "
                        "must authorise)")
    if problems:
        raise _UsageError(problems)
    route = route_of(profile, {})
    selectors = tuple(args.selector) or facts_for(route.provider).selectors
    return [Sender(d.lower().rstrip("."), route, selectors, (), ("command line",)) for d in args.domains]


def _print(findings, senders, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": not any(f.status == "fail" for f in findings),
                          "senders": [_sender_row(s) for s in senders],
                          "findings": [f.as_dict() for f in findings]}, indent=2))
        return
    for sender in senders:
        hosts = f" from {', '.join(sender.hosts)}" if sender.hosts else ""
        print(f"# {sender.domain} via {sender.route.via}{hosts}")
    for finding in findings:
        print(finding.line())


def _sender_row(sender) -> dict:
    return {"domain": sender.domain, "provider": sender.route.provider, "via": sender.route.via,
            "selectors": list(sender.selectors), "hosts": list(sender.hosts),
            "sources": list(sender.sources)}
