"""Findings for one sender: SPF, DKIM, DMARC, their alignment, and MX. One line each:

    ok    example.com  spf          one SPF record: v=spf1 include:amazonses.com ~all
    fail  example.com  dkim         no key at s1._domainkey.example.com; publish: ...

A check that cannot query (timeout, SERVFAIL) becomes a `warn` finding saying so, never a crash;
only DnsGuardError (a query the tests' guard refused) goes up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mailagent.dnscheck import dkim, dmarc, spf
from mailagent.dnscheck.providers import DKIM_PUBLISH, DKIM_PUBLISH_DEFAULT, facts_for
from mailagent.dnscheck.resolve import DnsError
from mailagent.dnscheck.senders import Sender
from mailagent.relay.presets import get_provider

STATUSES = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Finding:
    status: str          # ok | warn | fail
    domain: str
    check: str           # spf, spf-lookups, spf-provider, dkim, dmarc, alignment, mx, sender
    message: str
    publish: str | None = None

    def line(self) -> str:
        publish = f"; publish: {self.publish}" if self.publish else ""
        return f"{self.status:<4}  {self.domain}  {self.check:<12} {self.message}{publish}"

    def as_dict(self) -> dict:
        return asdict(self)


def check_sender(sender: Sender, resolver) -> list[Finding]:
    facts = facts_for(sender.route.provider)
    context = Context(sender, facts)
    for step in (_spf, _dkim, _dmarc, _alignment, _mx):
        try:
            step(context, resolver)
        except DnsError as exc:
            context.add("warn", step.__name__.strip("_"), f"cannot check: {exc}")
    return context.findings


class Context:
    """What one sender's checks found so far; later checks (alignment) read earlier results."""

    def __init__(self, sender: Sender, facts):
        self.sender, self.facts, self.findings = sender, facts, []
        self.spf_authorised = False
        self.dkim_selectors: list[str] = []
        self.policy: dmarc.Policy | None = None

    @property
    def domain(self) -> str:
        return self.sender.domain

    def add(self, status: str, check: str, message: str, publish: str | None = None) -> None:
        self.findings.append(Finding(status, self.domain, check, message, publish))


def _spf(ctx: Context, resolver) -> None:
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


def _dkim(ctx: Context, resolver) -> None:
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


def _dmarc(ctx: Context, resolver) -> None:
    name, records = f"_dmarc.{ctx.domain}", []
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


def _alignment(ctx: Context, resolver) -> None:
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


def _mx(ctx: Context, resolver) -> None:
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


def worst(findings) -> str:
    return max((f.status for f in findings), key=STATUSES.index, default="ok")


def check_all(senders, unnamed, resolver) -> list[Finding]:
    """Every sender's findings, after one line per relay host that names no sender domain."""
    findings = [Finding("warn", host, "sender", "names no sender domain (relay.sender_address or "
                        "myorigin), so its mail leaves as user@<its host name>, whose DNS nobody "
                        "checked") for host in unnamed]
    for sender in senders:
        findings += check_sender(sender, resolver)
    return findings


def check_hosts(entries, nameserver_of, make_resolver) -> tuple[list[Finding], list]:
    """Findings for inventory hosts, asking each host's nameserver (`nameserver_of(name)`)."""
    from mailagent.dnscheck.senders import collect

    groups: dict = {}
    for entry in entries:
        groups.setdefault(nameserver_of(entry.name), []).append(entry)
    findings, senders = [], []
    for nameserver, members in groups.items():
        found, unnamed = collect(members)
        findings += check_all(found, unnamed, make_resolver(nameserver))
        senders += found
    return findings, senders
