"""DKIM findings: a usable key at each selector the provider signs with.

    ok    example.com  dkim         s1._domainkey.example.com -> s1.domainkey...sendgrid.net: 2048-bit RSA key
"""

from __future__ import annotations

from mailagent.control.dnscheck import dkim
from mailagent.control.dnscheck.findings import Context
from mailagent.control.dnscheck.providers import DKIM_PUBLISH, DKIM_PUBLISH_DEFAULT
from mailagent.relay.presets import get_provider


def check_dkim(ctx: Context, resolver) -> None:
    selectors = ctx.sender.selectors
    if not selectors:
        hint = ctx.facts.selector_hint or "the selectors your provider signs with"
        ctx.add("warn", "dkim", f"no DKIM selector known for {ctx.sender.route.via}: set host data "
                f'dkim_selectors {{"{ctx.domain}": [...]}} ({hint})')
        return
    for number, selector in enumerate(selectors, start=1):
        _dkim_selector(ctx, selector, number, resolver)


def _dkim_selector(ctx: Context, selector: str, number: int, resolver) -> None:
    name = f"{selector}._domainkey.{ctx.domain}"
    answer = resolver.txt(name)
    where = name + "".join(f" -> {hop}" for hop in answer.chain)
    keys = [t for t in answer.records if "p=" in t.replace(" ", "")]
    if not keys:
        ctx.add("fail", "dkim", f"no key at {where}", _dkim_publish(ctx, selector, number))
        return
    if len(keys) > 1:
        ctx.add("fail", "dkim", f"{len(keys)} key records at {where}: verifiers need exactly one")
        return
    key = dkim.parse(keys[0])
    status, message = _judge(key)
    if status != "fail":  # a 1024-bit key still verifies, so it still aligns
        ctx.dkim_selectors.append(selector)
    ctx.add(status, "dkim", f"{where}: {message}",
            _dkim_publish(ctx, selector, number) if status == "fail" else None)


def _judge(key: dkim.Key) -> tuple[str, str]:
    if key.revoked:
        return "fail", "revoked (empty p=): mail signed with it fails DKIM"
    if key.problem:
        return "fail", key.problem
    if key.kind == "ed25519":
        return "ok", "ed25519 key"
    if key.bits < dkim.RSA_FAIL_BELOW:
        return "fail", f"{key.bits}-bit RSA key: verifiers refuse keys under {dkim.RSA_FAIL_BELOW} bits"
    if key.bits < dkim.RSA_WARN_BELOW:
        return "warn", f"{key.bits}-bit RSA key: still verifies, but use {dkim.RSA_WARN_BELOW} bits"
    return "ok", f"{key.bits}-bit RSA key"


def _dkim_publish(ctx: Context, selector: str, number: int) -> str:
    provider = ctx.sender.route.provider
    template = DKIM_PUBLISH.get(provider, DKIM_PUBLISH_DEFAULT)
    return template.format(selector=selector, domain=ctx.domain, n=number,
                           dashed=ctx.domain.replace(".", "-"), title=get_provider(provider).title)
