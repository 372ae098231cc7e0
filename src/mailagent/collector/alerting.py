"""Alert evaluation against the database: open new alerts, resolve cleared ones.

Runs on a timer (not per report) so "host silent" is seen even when nothing arrives, and so
ingest never waits on it. Several processes may share a database (see `leader`): only one
runs each pass, so every change is raised, and notified, once.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from mailagent.collector import rules
from mailagent.collector.db import alerts, hosts
from mailagent.collector.leader import pg_pass_lock
from mailagent.collector.settings import AlertSettings

_PG_LOCK_ID = 0x616C7274


def evaluate(engine: Engine, settings: AlertSettings, now: datetime) -> list[dict]:
    """One evaluation pass; returns the alert changes made (each as its JSON form)."""
    with engine.begin() as conn:
        if not pg_pass_lock(conn, _PG_LOCK_ID):
            return []
        views = [_view(r) for r in conn.execute(select(
            hosts.c.name, hosts.c.last_seen, hosts.c.interval_seconds, hosts.c.drained_at,
            hosts.c.conditions))]
        open_rows = conn.execute(select(alerts).where(alerts.c.state == "firing")).all()
        by_host: dict[str, dict[str, object]] = {}
        for row in open_rows:
            by_host.setdefault(row.host, {})[row.kind] = row
        changes = []
        for view in views:
            changes += _apply(conn, view, by_host.get(view.name, {}), settings, now)
        return changes


def firing_now(engine: Engine) -> list[dict]:
    """Every firing alert in its change form (Alertmanager forgets alerts not re-posted)."""
    with engine.connect() as conn:
        rows = conn.execute(select(alerts).where(alerts.c.state == "firing")).all()
    return [_event(r.id, r.host, r.kind, "firing", r.started_at, None, r.detail) for r in rows]


def _view(row) -> rules.HostView:
    return rules.HostView(name=row.name, last_seen=row.last_seen,
                          interval_seconds=row.interval_seconds, drained=row.drained_at is not None,
                          conditions=json.loads(row.conditions or "{}"))


def _apply(conn: Connection, view: rules.HostView, open_alerts: dict, settings: AlertSettings,
           now: datetime) -> list[dict]:
    should = rules.firing(view, settings, now)
    to_fire, to_resolve = rules.transitions(set(open_alerts), should)
    changes = []
    for kind in sorted(to_fire):
        result = conn.execute(alerts.insert().values(
            host=view.name, kind=kind, state="firing", started_at=now, detail=should[kind]))
        changes.append(_event(result.inserted_primary_key[0], view.name, kind, "firing", now,
                              None, should[kind]))
    for kind in sorted(to_resolve):
        row = open_alerts[kind]
        conn.execute(alerts.update().where(alerts.c.id == row.id)
                     .values(state="resolved", resolved_at=now))
        changes.append(_event(row.id, view.name, kind, "resolved", row.started_at, now, row.detail))
    return changes


def _event(alert_id, host, kind, state, started_at, resolved_at, detail) -> dict:
    return {"id": alert_id, "host": host, "kind": kind, "state": state,
            "started_at": started_at.isoformat(),
            "resolved_at": resolved_at.isoformat() if resolved_at else None, "detail": detail}
