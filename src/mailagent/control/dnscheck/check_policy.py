"""DMARC, alignment and MX findings: what receivers do with failing mail, whether this
provider's mail can pass, and whether bounces can come back.

    warn  example.com  dmarc        p=none: monitoring only: receivers take no action on mail that fails DMARC
"""

from __future__ import annotations

from mailagent.control.dnscheck import dmarc
from mailagent.control.dnscheck.findings import Context


def check_dmarc(ctx: Context, resolver) -> None:
    name = f"_dmarc.{ctx.domain}"
    records = [t for t in resolver.txt(name).records if dmarc.is_dmarc(t)]
    organizational = dmarc.organizational(ctx.domain)
    inherited = not records and organizational != ctx.domain
    if inherited:
        name = f"_dmarc.{organizational}"
        records = [t for t in resolver.txt(name).records if dmarc.is_dmarc(t)]
    if not records:
        ctx.add("warn", "dmarc", "no DMARC record: mail is judged by SPF and DKIM alone, and Gmail "
                "and Yahoo refuse bulk mail without one",
                f'_dmarc.{ctx.domain}. TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{ctx.domain}"')
        return
    if len(records) > 1:
        ctx.add("fail", "dmarc", f"{len(records)} records at {name}: receivers ignore them all")
        return
    policy = dmarc.parse(records[0])
    if inherited:
        policy.p = policy.sp  # a subdomain gets the organizational domain's sp=
    if policy.problems:
        ctx.add("fail", "dmarc", f"invalid ({'; '.join(policy.problems)}): {records[0]}")
        return
    ctx.policy = policy
    source = f" (inherited from {name})" if inherited else ""
    ctx.add("warn" if policy.p == "none" else "ok", "dmarc", policy.meaning() + source)


def check_alignment(ctx: Context, resolver) -> None:
    policy = ctx.policy or dmarc.Policy()
    passes = []
    if ctx.dkim_selectors:
        passes.append(f"DKIM d={ctx.domain} (selector {', '.join(ctx.dkim_selectors)})")
    envelope = _envelope_aligns(ctx, policy)
    if envelope:
        passes.append(envelope)
    via = ctx.sender.route.via
    if passes:
        ctx.add("ok", "alignment", f"mail via {via} can pass DMARC: " + " and ".join(passes) + " align")
        return
    status = "fail" if policy.p in ("quarantine", "reject") else "warn"
    ctx.add(status, "alignment", f"nothing aligns for mail via {via}: {_envelope_text(ctx, policy)} "
            f"and no usable DKIM key at {ctx.domain}, so DMARC fails ({policy.meaning()})")


def _envelope_aligns(ctx: Context, policy: dmarc.Policy) -> str | None:
    envelope = ctx.facts.envelope
    if envelope == "sender" and ctx.spf_authorised:
        return f"SPF for the envelope domain {ctx.domain}"
    if envelope == "subdomain" and policy.aspf == "r" and ctx.spf_authorised:
        return f"SPF for the provider's return-path subdomain of {ctx.domain} (relaxed aspf, once set up)"
    return None


def _envelope_text(ctx: Context, policy: dmarc.Policy) -> str:
    envelope = ctx.facts.envelope
    if envelope == "sender":
        return f"SPF of {ctx.domain} does not pass for it"
    if envelope == "subdomain":
        return ("the return-path subdomain does not align under aspf=s" if policy.aspf == "s"
                else f"SPF of {ctx.domain} does not authorise the provider")
    return f"the envelope domain is {envelope}"


def check_mx(ctx: Context, resolver) -> None:
    answer = resolver.mx(ctx.domain)
    if not answer.exists:
        ctx.add("fail", "mx", f"{ctx.domain} does not exist (NXDOMAIN): receivers refuse its mail")
        return
    if any(host == "." for _pref, host in answer.records):
        ctx.add("fail", "mx", "null MX (RFC 7505): the domain takes no mail, so bounces and replies "
                "to its senders are lost", f"{ctx.domain}. MX 10 <your inbound mail host>.")
        return
    if answer.records:
        ctx.add("ok", "mx", "bounces come back to " + ", ".join(f"{p} {h}" for p, h in answer.records))
        return
    if resolver.addresses(ctx.domain).records:
        ctx.add("warn", "mx", "no MX: bounces go to the domain's own address (implicit MX); publish one",
                f"{ctx.domain}. MX 10 <your inbound mail host>.")
        return
    ctx.add("fail", "mx", "no MX and no address: bounces and replies cannot be delivered",
            f"{ctx.domain}. MX 10 <your inbound mail host>.")
