"""SPF findings: one record, valid, within the lookup limits, authorising the provider.

    ok    example.com  spf-provider authorises sendgrid (include:sendgrid.net)
"""

from __future__ import annotations

from mailagent.control.dnscheck import spf
from mailagent.control.dnscheck.findings import Context


def check_spf(ctx: Context, resolver) -> None:
    texts = [t for t in resolver.txt(ctx.domain).records if spf.is_spf(t)]
    wanted = _wanted_term(ctx)
    if not texts:
        ctx.add("fail", "spf", "no SPF record",
                f'{ctx.domain}. TXT "{spf.with_term(None, wanted)}"' if wanted else None)
        return
    if len(texts) > 1:
        ctx.add("fail", "spf", f"{len(texts)} SPF records (receivers return permerror): merge them "
                "into one: " + " | ".join(texts))
        return
    record = spf.parse(texts[0])
    if record.problems:
        ctx.add("fail", "spf", f"invalid ({'; '.join(record.problems)}): {texts[0]}")
        return
    ctx.add("warn" if record.all_qualifier == "+" else "ok", "spf",
            ("+all lets every host on the internet send as this domain: " if record.all_qualifier == "+"
             else "one SPF record: ") + texts[0])
    tree = spf.walk(ctx.domain, resolver)
    _spf_limits(ctx, tree)
    _spf_provider(ctx, tree, texts[0], resolver)


def _wanted_term(ctx: Context) -> str | None:
    if ctx.facts.spf_include:
        return f"include:{ctx.facts.spf_include}"
    return f"a:{ctx.sender.route.smarthost}" if ctx.sender.route.smarthost else None


def _spf_limits(ctx: Context, tree: spf.Tree) -> None:
    counts = f"{tree.lookups} of {spf.LOOKUP_LIMIT} DNS lookups, {tree.voids} of {spf.VOID_LIMIT} void"
    problems = list(tree.problems)
    if tree.lookups > spf.LOOKUP_LIMIT:
        problems.insert(0, f"more than {spf.LOOKUP_LIMIT} DNS lookups through include/redirect "
                        "(permerror: receivers treat SPF as failed); flatten or drop includes")
    if tree.voids > spf.VOID_LIMIT:
        problems.insert(0, f"more than {spf.VOID_LIMIT} void lookups (permerror): remove mechanisms "
                        "naming domains that do not exist")
    if problems:
        ctx.add("fail", "spf-lookups", f"{counts}: " + "; ".join(problems))
    else:
        ctx.add("ok", "spf-lookups", counts)


def _spf_provider(ctx: Context, tree: spf.Tree, text: str, resolver) -> None:
    via = ctx.sender.route.via
    if ctx.facts.spf_include:
        if ctx.facts.spf_include in tree.includes:
            ctx.spf_authorised = True
            ctx.add("ok", "spf-provider", f"authorises {via} (include:{ctx.facts.spf_include})")
        else:
            ctx.add("fail", "spf-provider", f"does not authorise {via}: include:{ctx.facts.spf_include} "
                    "is missing", f'{ctx.domain}. TXT "{spf.with_term(text, _wanted_term(ctx))}"')
        return
    _spf_addresses(ctx, tree, text, resolver)


def _spf_addresses(ctx: Context, tree: spf.Tree, text: str, resolver) -> None:
    """Hubs and custom smarthosts: SPF must cover their public addresses (ip4/ip6/a/mx)."""
    host = ctx.sender.route.smarthost
    if not host:
        ctx.add("warn", "spf-provider", f"{ctx.sender.route.via}: no smarthost name to check SPF against")
        return
    addresses = resolver.addresses(host).records
    if not addresses:
        ctx.add("warn", "spf-provider", f"{host} has no address in DNS, so SPF cannot be checked for it")
        return
    missing = spf.authorises(tree, addresses)
    shown = ", ".join(map(str, addresses))
    if not missing:
        ctx.spf_authorised = True
        ctx.add("ok", "spf-provider", f"authorises {ctx.sender.route.via}'s addresses ({shown})")
        return
    status = "fail" if ctx.sender.route.provider == "hub" else "warn"
    ctx.add(status, "spf-provider", f"does not authorise {ctx.sender.route.via}: "
            f"{', '.join(map(str, missing))} not covered by ip4/ip6/a/mx",
            f'{ctx.domain}. TXT "{spf.with_term(text, f"a:{host}")}"')
