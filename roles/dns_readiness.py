"""DNS readiness pre-flight: the sender domains' SPF, DKIM, DMARC and MX, checked from the
control machine once per deploy, before any host is touched.

Host data `dns_check` (mailagent.control.dnscheck.settings.DnsSettings): `warn` (default)
prints each warn/fail finding and goes on; `fail` stops the whole deploy on a `fail` finding of
that host's sender domains, nothing changed; `off` skips the host. `dns_nameserver` picks the
nameserver.
The findings are those of `mailagent dns-check --inventory` (one line each).
"""

from __future__ import annotations

from pyinfra import host, logger
from pydantic import ValidationError
from pyinfra.api import DeployError

from mailagent.control.dnscheck.checks import check_hosts
from mailagent.control.dnscheck.inventory import InventoryError, entries_of
from mailagent.control.dnscheck.resolve import Resolver
from mailagent.control.dnscheck.settings import DnsSettings
from roles.postfix_relay.validate import profile_for, wants_relay

_DONE_ATTRIBUTE = "_mailagent_dns_preflight_done"


def dns_preflight() -> None:
    """Run once per deploy (the first host to prepare runs it for the inventory)."""
    state = host.state
    if getattr(state, _DONE_ATTRIBUTE, False):
        return
    setattr(state, _DONE_ATTRIBUTE, True)
    modes = _modes(h for h in state.inventory if wants_relay(h))
    failures = []
    for mode in ("warn", "fail"):
        hosts = [h for h, m in modes.items() if m.dns_check == mode]
        if hosts:
            failures += _check(hosts, {h.name: modes[h] for h in hosts}, mode)
    if failures:
        raise DeployError("DNS readiness (dns_check: fail), nothing was changed:\n" + "\n".join(failures)
                          + "\nfix the records, or set dns_check: warn to deploy anyway")


def _modes(hosts) -> dict:
    settings, problems = {}, []
    for target in hosts:
        try:
            settings[target] = DnsSettings.of(target.data)
        except ValidationError as exc:
            problems += [f"{target.name}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise DeployError("invalid DNS readiness settings, nothing was changed:\n" + "\n".join(problems))
    return settings


def _check(hosts, settings: dict, mode: str) -> list[str]:
    """Log every warn/fail finding; return the fail lines when `mode` is fail."""
    try:
        entries, _ = entries_of(hosts, profile_of=profile_for)
    except InventoryError as exc:
        raise DeployError("\n".join(exc.problems)) from None
    findings, _senders = check_hosts(entries, lambda name: settings[name].dns_nameserver, Resolver)
    for finding in findings:
        if finding.status != "ok":
            logger.warning(f"DNS readiness: {finding.line()}")
    return [f.line() for f in findings if f.status == "fail"] if mode == "fail" else []
