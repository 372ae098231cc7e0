"""The host registry and the read side: fleet listing, host history, alerts.

Registration errors::

    RegistryError
    ├── BadKey        the public key is not a valid Ed25519 key
    ├── KeyConflict   the host has another key and `replace` was not asked for (or the key
    │                 that signed the rotation is no longer the registered one)
    └── Replayed      the signed request's nonce was used before
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from mailagent import signing
from mailagent.collector.db import alerts, hosts, nonces, report_hourly, reports, utcnow


class RegistryError(Exception):
    """A registration was refused."""


class BadKey(RegistryError):
    """The public key is not a valid Ed25519 key."""


class KeyConflict(RegistryError):
    """The host is registered with another key and `replace` was not given."""


class Replayed(RegistryError):
    """The nonce of a signed request was used before by this host."""


NonceClaim = tuple[str, str, datetime]  # host, nonce, seen_at: a signed request's nonce


def public_key(engine: Engine, name: str) -> str | None:
    """The key registered for `name`, or None."""
    with engine.connect() as conn:
        return conn.execute(select(hosts.c.public_key).where(hosts.c.name == name)).scalar()


def _claim(conn, claim: NonceClaim | None) -> None:
    """Record a signed request's nonce in the transaction that acts on it; Replayed if used."""
    if claim is None:
        return
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    host, nonce, seen_at = claim
    added = conn.execute(dialect_insert(nonces).values(host=host, nonce=nonce, seen_at=seen_at)
                         .on_conflict_do_nothing().returning(nonces.c.nonce)).first()
    if added is None:
        raise Replayed(f"nonce already used by {host!r}")


def register_host(engine: Engine, name: str, public_key: str, replace: bool = False,
                  signed_key: str | None = None, claim: NonceClaim | None = None) -> str:
    """Register `name` with `public_key`: "created", "unchanged" (same key) or "replaced".

    `signed_key` is the key a rotation request verified with: the replacement happens only if
    it is still the registered one, in the same transaction that claims the request's nonce."""
    try:
        signing.parse_public_key(public_key)
    except signing.BadSignature as exc:
        raise BadKey(str(exc)) from None
    with engine.begin() as conn:
        row = conn.execute(select(hosts.c.public_key).where(hosts.c.name == name)).first()
        _claim(conn, claim)
        if signed_key is not None and (row is None or row.public_key != signed_key):
            raise KeyConflict(f"host {name!r}: the key that signed this request is no longer "
                              "the registered one")
        if row is None:
            conn.execute(hosts.insert().values(name=name, public_key=public_key,
                                               registered_at=utcnow(), role="relay"))
            return "created"
        if row.public_key == public_key:
            return "unchanged"
        if not replace:
            raise KeyConflict(f"host {name!r} is registered with another key; to rotate "
                              "it send replace: true with the admin token, or sign the request "
                              "with the current key")
        conn.execute(hosts.update().where(hosts.c.name == name)
                     .values(public_key=public_key, registered_at=utcnow()))
        return "replaced"


def set_drained(engine: Engine, name: str, drained: bool,
                claim: NonceClaim | None = None) -> bool:
    """Mark a host drained now (expected to go quiet: no alerts) or back in service; False if
    unknown. The host's own signed "drained" report does the same through ingest."""
    with engine.begin() as conn:
        _claim(conn, claim)
        result = conn.execute(hosts.update().where(hosts.c.name == name)
                              .values(drained_at=utcnow() if drained else None))
        return result.rowcount > 0


def delete_host(engine: Engine, name: str) -> bool:
    """Forget a decommissioned host: its key goes, its open alerts resolve, its history stays
    until retention removes it. False if the host is unknown."""
    with engine.begin() as conn:
        if conn.execute(hosts.delete().where(hosts.c.name == name)).rowcount == 0:
            return False
        conn.execute(alerts.update().where(alerts.c.host == name, alerts.c.state == "firing")
                     .values(state="resolved", resolved_at=utcnow()))
        return True


def _alert_dict(row) -> dict:
    return {"id": row.id, "host": row.host, "kind": row.kind, "state": row.state,
            "started_at": row.started_at.isoformat(),
            "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
            "detail": row.detail}


def list_alerts(engine: Engine, state: str | None = None, host: str | None = None,
                limit: int = 500) -> list[dict]:
    """Alerts, newest first, optionally only one state ("firing"/"resolved") or host."""
    query = select(alerts).order_by(alerts.c.started_at.desc(), alerts.c.id.desc()).limit(limit)
    if state:
        query = query.where(alerts.c.state == state)
    if host:
        query = query.where(alerts.c.host == host)
    with engine.connect() as conn:
        return [_alert_dict(r) for r in conn.execute(query)]


def _host_dict(row, open_alerts: list[dict]) -> dict:
    latest = json.loads(row.latest) if row.latest else None
    queue = (latest or {}).get("queue") or {}
    return {
        "host": row.name,
        "registered_at": row.registered_at.isoformat(),
        "last_seen": row.last_seen.isoformat() if row.last_seen else None,
        "role": row.role,
        "drained": row.drained_at is not None,
        "drained_at": row.drained_at.isoformat() if row.drained_at else None,
        "interval_seconds": row.interval_seconds,
        "queue": queue.get("counts"),
        "oldest_age_seconds": queue.get("oldest_age_seconds"),
        "top_deferral_reasons": list((queue.get("deferred_by_reason") or {}).items())[:3],
        "latest": latest,
        "open_alerts": open_alerts,
    }


def list_hosts(engine: Engine) -> list[dict]:
    """Every registered host with its latest figures and open alerts, by name (hubs too:
    `role` tells them apart)."""
    with engine.connect() as conn:
        rows = conn.execute(select(hosts).order_by(hosts.c.name)).all()
        firing = conn.execute(select(alerts).where(alerts.c.state == "firing")).all()
    by_host: dict[str, list[dict]] = {}
    for alert in firing:
        by_host.setdefault(alert.host, []).append(_alert_dict(alert))
    return [_host_dict(r, by_host.get(r.name, [])) for r in rows]


def get_host(engine: Engine, name: str, history_hours: float) -> dict | None:
    """One host with its history (raw reports, then hourly rows beyond the raw window)."""
    since = utcnow() - timedelta(hours=history_hours)
    with engine.connect() as conn:
        row = conn.execute(select(hosts).where(hosts.c.name == name)).first()
        if row is None:
            return None
        firing = conn.execute(select(alerts).where(alerts.c.host == name,
                                                   alerts.c.state == "firing")).all()
        raw = conn.execute(select(*_HISTORY_COLUMNS).where(
            reports.c.host == name, reports.c.generated_at >= since)
            .order_by(reports.c.generated_at)).all()
        hourly = conn.execute(select(report_hourly).where(
            report_hourly.c.host == name, report_hourly.c.hour >= since)
            .order_by(report_hourly.c.hour)).all()
    out = _host_dict(row, [_alert_dict(a) for a in firing])
    out["history"] = _history(hourly, raw)
    out["alerts"] = list_alerts(engine, host=name, limit=50)
    return out


_HISTORY_COLUMNS = (reports.c.generated_at, reports.c.queue_active, reports.c.queue_deferred,
                    reports.c.queue_hold, reports.c.oldest_age_seconds, reports.c.sent,
                    reports.c.bounced, reports.c.sasl_auth_failures)


def _history(hourly, raw) -> list[dict]:
    """Points oldest first: hourly rollups (peaks and sums) before the raw reports."""
    points = [{"at": h.hour.isoformat(), "active": h.queue_active_max,
               "deferred": h.queue_deferred_max, "hold": h.queue_hold_max,
               "oldest_age_seconds": h.oldest_age_max, "sent": h.sent, "bounced": h.bounced,
               "sasl_auth_failures": h.sasl_auth_failures, "hourly": True} for h in hourly]
    first_raw: datetime | None = raw[0].generated_at if raw else None
    points = [p for p in points if first_raw is None or p["at"] < first_raw.isoformat()]
    points += [{"at": r.generated_at.isoformat(), "active": r.queue_active,
                "deferred": r.queue_deferred, "hold": r.queue_hold,
                "oldest_age_seconds": r.oldest_age_seconds, "sent": r.sent,
                "bounced": r.bounced, "sasl_auth_failures": r.sasl_auth_failures,
                "hourly": False} for r in raw]
    return points
