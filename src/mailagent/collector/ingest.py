"""Report ingest: authenticate, validate and store a batch of signed reports in one transaction.

Checks run in this order, and a request stops at the first that fails, so nothing about an
unauthenticated request (not even its schema errors) is revealed or stored:

    415, 413, 401      refused before queueing, see `gate` (content type, header forms,
                       stale timestamp, unknown host, body size)
    401 unknown_host   no key registered for the host, or signature headers missing
    401 stale          timestamp outside the allowed skew (server_time: the collector's clock)
    403 bad_signature  signature does not verify, or a header is malformed
    409 replayed       nonce already used by this host (also within one batch)
    422 invalid        the body is not a valid Report (the reasons are returned)
    422 future         generated_at later than receipt plus the allowed skew
    403 host_mismatch  report.host differs from the signing host
    200 duplicate      report_id already stored (an honest resend): nothing stored twice
    200 accepted       stored; the host's last_seen, latest figures and conditions advance

A report with lifecycle "drained" (sent by `mailagent drain` once the host's queue is empty)
sets the host's drained_at to its generated_at; any normal report generated later clears it
(the host is back). A spooled report older than the notice only adds history.

Latest figures follow the newest generated_at, so reports arriving out of order (spooled ones
late) leave them right; one dated beyond receipt plus the skew is refused, and latest figures
stored before that rule, dated in the future, give way to the next honest report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError
from pydantic_core import from_json
from sqlalchemy.engine import Engine

from mailagent import signing
from mailagent.collector import batchstore, rules, summary
from mailagent.collector.batchstore import HostRow
from mailagent.collector.keycache import HostKey, KeyCache
from mailagent.collector.settings import CollectorSettings
from mailagent.report import Report


@dataclass
class Submission:
    """One POSTed report as received."""

    headers: dict[str, str]
    body: bytes
    received_at: datetime


@dataclass
class Outcome:
    """What to answer, and the counter it increments."""

    status: int
    outcome: str
    detail: object = None
    extra: dict = field(default_factory=dict)  # more fields of the answer (server_time)

    def payload(self) -> dict:
        if self.status == 200:
            return {"ok": True, "duplicate": self.outcome == "duplicate", **(self.detail or {})}
        return {"ok": False, "error": self.outcome, "detail": self.detail, **self.extra}


@dataclass
class _Checked:
    sub: Submission
    host: str
    nonce: str
    key_text: str | None = None      # the registered key `verdict` was reached with
    verdict: Outcome | None = None   # the signature check (None: it verified)
    parsed: Outcome | None = None    # the body check, answered only once authenticated
    report: Report | None = None
    row: dict | None = None          # the `reports` row to insert
    outcome: Outcome | None = None


def process_batch(engine: Engine, settings: CollectorSettings, batch: list[Submission],
                  keys: KeyCache | None = None) -> list[Outcome]:
    """Authenticate, validate and store `batch`; one Outcome per submission, in order.

    Signatures are checked and bodies parsed first, outside the transaction, with the keys
    in `keys` (a process-wide cache), so the database is held only for the writes. Inside,
    every host's row is read again and held until the commit (see batchstore); a report
    checked with any other key than the one registered now is checked again.
    """
    keys = KeyCache() if keys is None else keys
    checked = [_precheck(s, keys, settings) for s in batch]
    # Nonces of requests that verified with the cached key are claimed as the transaction
    # opens, in the same round trip; any left (the cache was cold or stale) right after.
    early = _first_per_nonce([c for c in checked if c.outcome is None and c.verdict is None])
    with batchstore.transaction(engine) as tx:
        known, claimed = tx.open(sorted({c.host for c in checked if c.host}), _nonce_rows(early))
        for item in checked:
            _confirm(item, known, keys, settings)
        authenticated = [c for c in checked if c.outcome is None]
        first = _first_per_nonce(authenticated)
        late = {key: item for key, item in first.items() if key not in early}
        if late:
            claimed |= tx.claim_nonces(_nonce_rows(late))
        for item in authenticated:  # DB-enforced, so replicas refuse each other's replays too
            key = (item.host, item.nonce)
            item.outcome = item.parsed if first[key] is item and key in claimed else \
                Outcome(409, "replayed", "nonce already used")
        # A nonce claimed for a request refused after all (its key changed meanwhile) is given
        # back: nothing of a refused request is kept.
        forget = sorted(key for key in early if key in claimed and key not in first)
        _store(tx, [c for c in checked if c.outcome.outcome == "accepted"], known, settings,
               forget)
    return [c.outcome for c in checked]


def _first_per_nonce(items: list[_Checked]) -> dict[tuple[str, str], _Checked]:
    first: dict[tuple[str, str], _Checked] = {}
    for item in items:
        first.setdefault((item.host, item.nonce), item)
    return first


def _nonce_rows(items: dict[tuple[str, str], _Checked]) -> list[tuple]:
    return [(host, nonce, item.sub.received_at) for (host, nonce), item in sorted(items.items())]


def _host_header(sub: Submission) -> str:
    return sub.headers.get(signing.H_HOST.lower(), "")


def _precheck(sub: Submission, keys: KeyCache, settings: CollectorSettings) -> _Checked:
    """Check headers and signature with the cached key, and parse the body if it verified."""
    host = _host_header(sub)
    item = _Checked(sub, host, sub.headers.get(signing.H_NONCE.lower(), ""))
    missing = [h for h in signing.SIGNED_HEADERS if h.lower() not in sub.headers]
    if missing:
        item.outcome = Outcome(401, "unknown_host", f"missing headers: {', '.join(missing)}")
        return item
    _verify(item, keys.get(host), settings)
    return item


def _confirm(item: _Checked, known: dict[str, HostRow], keys: KeyCache,
             settings: CollectorSettings) -> None:
    """Settle the signature check against the key registered now (read in the transaction)."""
    if item.outcome is not None:
        return
    text = known[item.host].public_key if item.host in known else None
    if text != item.key_text:
        _verify(item, keys.remember(item.host, text) if text is not None else None, settings)
    item.outcome = item.verdict


def _verify(item: _Checked, key: HostKey | None, settings: CollectorSettings) -> None:
    # Only the four signing headers, under their canonical names.
    signed = {h: item.sub.headers[h.lower()] for h in signing.SIGNED_HEADERS}
    item.key_text, item.verdict = (key.text if key else None), None
    try:
        signing.verify_request(key, signed, item.sub.body, now=item.sub.received_at.timestamp(),
                        max_skew=settings.max_skew_seconds)
    except signing.UnknownHost:
        item.verdict = Outcome(401, "unknown_host", f"host {item.host!r} is not registered")
    except signing.Stale as exc:
        item.verdict = Outcome(401, "stale", str(exc),
                               extra={"server_time": int(item.sub.received_at.timestamp())})
    except signing.BadSignature as exc:
        item.verdict = Outcome(403, "bad_signature", str(exc))
    if item.verdict is None and item.parsed is None:
        item.parsed = _validate(item, settings)


def _validate(item: _Checked, settings: CollectorSettings) -> Outcome:
    try:
        item.report = report = Report.from_wire(item.sub.body)
    except ValidationError as exc:
        return Outcome(422, "invalid", [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()])
    if report.host != item.host:
        return Outcome(403, "host_mismatch",
                       f"report is about {report.host!r} but signed by {item.host!r}")
    latest_allowed = _latest_allowed(item.sub.received_at, settings)
    if report.generated_at > latest_allowed:
        return Outcome(422, "future", f"generated_at {report.generated_at.isoformat()} is "
                       f"after {latest_allowed.isoformat()} (receipt plus max_skew_seconds)",
                       extra={"server_time": int(item.sub.received_at.timestamp())})
    rid = str(report.report_id)
    item.row = {"id": rid, "host": item.host, "generated_at": report.generated_at,
                "received_at": item.sub.received_at, "body": report.model_dump_json(),
                **summary.report_columns(report)}
    return Outcome(200, "accepted", {"report_id": rid})


def _store(tx, items: list[_Checked], known: dict[str, HostRow], settings: CollectorSettings,
           forget: list[tuple[str, str]]) -> None:
    """Store the accepted reports (each id once) and move their hosts forward, then commit.

    The host updates are worked out before the database says which ids were new, so the
    commit rides with the writes: a report stored before (an honest resend) is never newer
    than its host's latest figures, which already took it in, so it changes nothing there
    but `last_seen` (the host was seen)."""
    rows, first = [], {}
    for item in items:
        rid = str(item.report.report_id)
        if rid in first:
            item.outcome = Outcome(200, "duplicate", {"report_id": rid})
            continue
        first[rid] = item
        rows.append(item.row)
    rows.sort(key=lambda row: row["id"])  # one lock order for concurrent batches
    stored = tx.finish(rows, _host_updates(list(first.values()), known, settings), forget)
    for rid, item in first.items():
        if rid not in stored:
            item.outcome = Outcome(200, "duplicate", {"report_id": rid})


def _host_updates(items: list[_Checked], known: dict[str, HostRow],
                  settings: CollectorSettings) -> list[dict]:
    """Each host's latest figures and alert conditions moved forward, oldest report first;
    a late spooled report older than the latest only adds history. In name order, so
    concurrent batches take the rows' locks in one order."""
    by_host: dict[str, list[_Checked]] = {}
    for item in sorted(items, key=lambda i: i.report.generated_at):
        by_host.setdefault(item.host, []).append(item)
    return [_advance_one(host, by_host[host], known[host], settings) for host in sorted(by_host)]


def _advance_one(host: str, mine: list[_Checked], state: HostRow,
                 settings: CollectorSettings) -> dict:
    # pydantic's JSON parser reads these the same as json.loads, about 4x faster.
    latest, conds = from_json(state.latest or "null"), from_json(state.conditions or "{}")
    interval, role, drained_at = state.interval_seconds, state.role, state.drained_at
    for item in mine:
        when = item.report.generated_at
        if latest and when <= datetime.fromisoformat(latest["generated_at"]) <= \
                _latest_allowed(item.sub.received_at, settings):
            continue  # older than the latest figures (a latest from the future gives way)
        latest = summary.host_summary(item.report, latest)
        conds = rules.advance(conds, rules.evaluate_report(item.report, settings.alerts), when)
        interval, role = item.report.interval_seconds, item.report.role
        drained_at = drained_after(drained_at, item.report)
    return {"name": host, "last_seen": max(i.sub.received_at for i in mine),
            "latest": json.dumps(latest), "conditions": json.dumps(conds),
            "interval_seconds": interval, "role": role, "drained_at": drained_at}


def drained_after(drained_at: datetime | None, report: Report) -> datetime | None:
    """The host's drained_at once `report` (newer than its latest) is taken in."""
    if report.lifecycle == "drained":
        return report.generated_at
    if drained_at is not None and report.generated_at > drained_at:
        return None  # the host reports normally again: it is back in service
    return drained_at


def _latest_allowed(received_at: datetime, settings: CollectorSettings) -> datetime:
    """The latest generated_at taken from a report received at `received_at`."""
    return received_at + timedelta(seconds=settings.max_skew_seconds)
