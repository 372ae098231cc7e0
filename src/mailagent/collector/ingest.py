"""Report ingest: authenticate, validate and store a batch of signed reports in one transaction.

Checks run in this order, and a request stops at the first that fails, so nothing about an
unauthenticated request (not even its schema errors) is revealed or stored:

    413 too_large      body over the limit (checked by the HTTP layer before this)
    401 unknown_host   no key registered for the host, or signature headers missing
    401 stale          timestamp outside the allowed skew
    403 bad_signature  signature does not verify
    409 replayed       nonce already used by this host (also within one batch)
    422 invalid        the body is not a valid Report (the reasons are returned)
    403 host_mismatch  report.host differs from the signing host
    200 duplicate      report_id already stored (an honest resend): nothing stored twice
    200 accepted       stored; the host's last_seen, latest figures and conditions advance
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Engine

from mailagent import signing
from mailagent.collector import rules, summary
from mailagent.collector.db import hosts, nonces, reports
from mailagent.collector.settings import CollectorSettings
from mailagent.collector.upsert import insert_ignore
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

    def payload(self) -> dict:
        if self.status == 200:
            return {"ok": True, "duplicate": self.outcome == "duplicate", **(self.detail or {})}
        return {"ok": False, "error": self.outcome, "detail": self.detail}


@dataclass
class _Checked:
    sub: Submission
    host: str
    nonce: str
    report: Report | None = None
    outcome: Outcome | None = None


def process_batch(engine: Engine, settings: CollectorSettings,
                  batch: list[Submission]) -> list[Outcome]:
    """Authenticate, validate and store `batch`; one Outcome per submission, in order."""
    with engine.begin() as conn:
        known = _load_hosts(conn, {_host_header(s) for s in batch})
        checked = [_check(s, known, settings) for s in batch]
        _refuse_replays(conn, checked)
        for item in checked:
            if item.outcome is None:
                item.outcome = _validate(item)
        _store(conn, [c for c in checked if c.outcome.outcome == "accepted"], known, settings)
    return [c.outcome for c in checked]


def _host_header(sub: Submission) -> str:
    return sub.headers.get(signing.H_HOST.lower(), "")


def _load_hosts(conn: Connection, names: set[str]) -> dict[str, dict]:
    rows = conn.execute(select(hosts.c.name, hosts.c.public_key, hosts.c.latest,
                               hosts.c.conditions, hosts.c.interval_seconds)
                        .where(hosts.c.name.in_(sorted(n for n in names if n))))
    return {r.name: {"public_key": r.public_key, "latest": json.loads(r.latest or "null"),
                     "conditions": json.loads(r.conditions or "{}"),
                     "interval": r.interval_seconds} for r in rows}


def _check(sub: Submission, known: dict[str, dict], settings: CollectorSettings) -> _Checked:
    host = _host_header(sub)
    item = _Checked(sub, host, sub.headers.get(signing.H_NONCE.lower(), ""))
    missing = [h for h in signing.SIGNED_HEADERS if h.lower() not in sub.headers]
    if missing:
        item.outcome = Outcome(401, "unknown_host", f"missing headers: {', '.join(missing)}")
        return item
    key = known.get(host, {}).get("public_key")
    # Only the four signing headers, under their canonical names: verify_request then finds
    # each by a plain lookup instead of scanning every header the client sent.
    signed = {h: sub.headers[h.lower()] for h in signing.SIGNED_HEADERS}
    try:
        signing.verify_request(key, signed, sub.body, now=sub.received_at.timestamp(),
                               max_skew=settings.max_skew_seconds)
    except signing.UnknownHost:
        item.outcome = Outcome(401, "unknown_host", f"host {host!r} is not registered")
    except signing.Stale as exc:
        item.outcome = Outcome(401, "stale", str(exc))
    except signing.BadSignature as exc:
        item.outcome = Outcome(403, "bad_signature", str(exc))
    return item


def _refuse_replays(conn: Connection, checked: list[_Checked]) -> None:
    """Record the nonces of authenticated requests; refuse any already seen (DB-enforced, so
    replicas sharing one database refuse replays between them too)."""
    fresh: dict[tuple[str, str], _Checked] = {}
    for item in checked:
        if item.outcome is not None:
            continue
        if (item.host, item.nonce) in fresh:
            item.outcome = Outcome(409, "replayed", "nonce already used")
        else:
            fresh[(item.host, item.nonce)] = item
    if not fresh:
        return
    rows = [{"host": h, "nonce": n, "seen_at": it.sub.received_at}
            for (h, n), it in sorted(fresh.items())]
    stored = insert_ignore(conn, nonces, rows, ("host", "nonce"))
    for key, item in fresh.items():
        if key not in stored:
            item.outcome = Outcome(409, "replayed", "nonce already used")


def _validate(item: _Checked) -> Outcome:
    try:
        item.report = Report.from_wire(item.sub.body)
    except ValidationError as exc:
        return Outcome(422, "invalid", [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()])
    if item.report.host != item.host:
        return Outcome(403, "host_mismatch",
                       f"report is about {item.report.host!r} but signed by {item.host!r}")
    return Outcome(200, "accepted", {"report_id": str(item.report.report_id)})


def _store(conn: Connection, items: list[_Checked], known: dict[str, dict],
           settings: CollectorSettings) -> None:
    rows, first = [], {}
    for item in items:
        rid = str(item.report.report_id)
        if rid in first:
            item.outcome = Outcome(200, "duplicate", {"report_id": rid})
            continue
        first[rid] = item
        rows.append({"id": rid, "host": item.host, "generated_at": item.report.generated_at,
                     "received_at": item.sub.received_at, "body": item.report.model_dump_json(),
                     **summary.report_columns(item.report)})
    rows.sort(key=lambda row: row["id"])  # one lock order for concurrent batches
    stored = {k[0] for k in insert_ignore(conn, reports, rows, ("id",))}
    for rid, item in first.items():
        if rid not in stored:
            item.outcome = Outcome(200, "duplicate", {"report_id": rid})
    _advance_hosts(conn, [item for rid, item in first.items() if rid in stored],
                   known, settings)


def _advance_hosts(conn: Connection, items: list[_Checked], known: dict[str, dict],
                   settings: CollectorSettings) -> None:
    """Move each host's latest figures and alert conditions forward, oldest report first;
    a late spooled report older than the latest only adds history."""
    by_host: dict[str, list[_Checked]] = {}
    for item in sorted(items, key=lambda i: i.report.generated_at):
        by_host.setdefault(item.host, []).append(item)
    # Rows are updated in name order so concurrent batches (PostgreSQL) cannot deadlock.
    updates = [_advance_one(host, by_host[host], known[host], settings) for host in sorted(by_host)]
    if updates:
        conn.execute(hosts.update().where(hosts.c.name == bindparam("b_name")).values(
            last_seen=bindparam("b_seen"), latest=bindparam("b_latest"),
            conditions=bindparam("b_conds"), interval_seconds=bindparam("b_interval")), updates)


def _advance_one(host: str, mine: list[_Checked], state: dict, settings: CollectorSettings) -> dict:
    latest, conds, interval = state["latest"], state["conditions"], state["interval"]
    for item in mine:
        when = item.report.generated_at
        if latest and when <= datetime.fromisoformat(latest["generated_at"]):
            continue
        latest = summary.host_summary(item.report, latest)
        conds = rules.advance(conds, rules.evaluate_report(item.report, settings.alerts), when)
        interval = item.report.interval_seconds
    return {"b_name": host, "b_seen": max(i.sub.received_at for i in mine),
            "b_latest": json.dumps(latest), "b_conds": json.dumps(conds), "b_interval": interval}
