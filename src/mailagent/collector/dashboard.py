"""The HTML dashboard: the fleet table at `/` and a page per host with history charts.

Server-rendered with Jinja2; CSS and SVG are inline, so the pages need nothing from the
internet (the collector may run on a host with no way out).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mailagent.collector import auth, charts, store
from mailagent.collector.db import utcnow

# Readers only (auth.require_read): a browser is asked for HTTP basic auth, the read token as
# the password.
router = APIRouter(include_in_schema=False, dependencies=[Depends(auth.require_read)])
TEMPLATES = Path(__file__).parent / "templates"


def make_environment() -> Environment:
    """The page templates, HTML-escaped, with the dashboard's formatting filters."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["age"] = human_age
    env.filters["ago"] = lambda iso, now: "never" if not iso else human_age(
        (now - datetime.fromisoformat(iso)).total_seconds()) + " ago"
    return env


def human_age(seconds: float | None) -> str:
    """120 -> "2m", 7300 -> "2h 1m"; None -> "–"."""
    if seconds is None:
        return "–"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _env(request: Request) -> Environment:
    state = request.app.state
    if not hasattr(state, "templates"):
        state.templates = make_environment()
    return state.templates


def status_of(host: dict) -> str:
    """One word for the fleet table's status column."""
    if host["drained"]:
        return "drained"
    if host["open_alerts"]:
        return "alert"
    if host["last_seen"] is None:
        return "new"
    return "ok"


@router.get("/", response_class=HTMLResponse)
def fleet_page(request: Request) -> HTMLResponse:
    collector = request.app.state.collector
    fleet = store.list_hosts(collector.engine)
    for host in fleet:
        host["status"] = status_of(host)
    # A drained host's alerts resolve at the next evaluation pass; until then they are not news.
    firing = [a for h in fleet if not h["drained"] for a in h["open_alerts"]]
    page = _env(request).get_template("fleet.html.j2").render(
        hosts=fleet, firing=firing, now=utcnow(),
        hubs=[h for h in fleet if h["role"] == "hub"],
        relays=[h for h in fleet if h["role"] != "hub"],
        refresh=collector.settings.dashboard_refresh_seconds,
        deferred_total=sum((h["queue"] or {}).get("deferred", 0) for h in fleet))
    return HTMLResponse(page)


@router.get("/hosts/{host}", response_class=HTMLResponse)
def host_page(request: Request, host: str) -> HTMLResponse:
    collector = request.app.state.collector
    found = store.get_host(collector.engine, host, collector.settings.history_hours)
    if found is None:
        raise HTTPException(404, f"unknown host {host!r}")
    found["status"] = status_of(found)
    page = _env(request).get_template("host.html.j2").render(
        host=found, now=utcnow(), refresh=collector.settings.dashboard_refresh_seconds,
        charts=host_charts(found["history"]), hours=collector.settings.history_hours)
    return HTMLResponse(page)


def host_charts(history: list[dict]) -> list[str]:
    """The host page's three charts: queues, oldest age, deliveries."""
    def series(key: str, scale: float = 1.0):
        return [(datetime.fromisoformat(p["at"]),
                 None if p[key] is None else p[key] / scale) for p in history]
    return [
        charts.line_chart("Queued messages", {"deferred": series("deferred"),
                                              "active": series("active"), "hold": series("hold")}),
        charts.line_chart("Oldest message age (minutes)",
                          {"oldest": series("oldest_age_seconds", 60.0)}, unit="m"),
        charts.line_chart("Deliveries per report", {"sent": series("sent"),
                                                    "bounced": series("bounced"),
                                                    "auth failures": series("sasl_auth_failures")}),
    ]
