"""The JSON API: report ingest, host registration, fleet and alert listings, metrics, health."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from mailagent.collector import auth, metrics, store
from mailagent.collector.db import utcnow
from mailagent.collector.fastpath import answer_report
from mailagent.collector.service import Collector
from mailagent.names import HostName

router = APIRouter()
_READ = [Depends(auth.require_read)]  # every read route: see auth for who may


def _collector(request: Request) -> Collector:
    return request.app.state.collector


class RegisterRequest(BaseModel):
    """A host's identity, registered by the deploy."""

    model_config = ConfigDict(extra="forbid")
    host: HostName = Field(description="Host name.")
    public_key: str = Field(max_length=64, description="base64 of the raw Ed25519 public key.")
    replace: bool = Field(default=False, description="Replace a different registered key.")


class DrainRequest(BaseModel):
    """Mark a host drained (it may go quiet without a host_silent alert) or back in service."""

    model_config = ConfigDict(extra="forbid")
    drained: bool = Field(description="True while the host is drained.")


@router.post("/api/v1/reports", tags=["ingest"], summary="Submit a signed report",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"$ref": "#/components/schemas/Report"}}}}},
             responses={200: {"description": "Stored, or already stored (duplicate=true)"},
                        401: {"description": "Unknown host, missing headers, or stale "
                              "timestamp (server_time: the collector's clock)"},
                        403: {"description": "Bad signature or report.host != signing host"},
                        409: {"description": "Replayed nonce"},
                        413: {"description": "Body over the size limit"},
                        415: {"description": "Content-Type is not application/json"},
                        422: {"description": "Not a valid report, or generated_at in the "
                              "future; the reasons are returned"},
                        503: {"description": "Storage unavailable; retry later"}})
async def post_report(request: Request) -> JSONResponse:
    # Normally answered by fastpath.IngestFastPath before routing; same logic either way.
    outcome = await answer_report(_collector(request), dict(request.headers), request.receive)
    return JSONResponse(outcome.payload(), status_code=outcome.status)


@router.post("/api/v1/hosts/register", tags=["hosts"], summary="Register a host's public key",
             responses={401: {"description": "No, a wrong, or a stale credential"},
                        403: {"description": "The credential may not do this"},
                        409: {"description": "Another key is registered, or a replayed nonce"},
                        429: {"description": "Too many wrong tokens from this address"}})
async def register(request: Request, payload: RegisterRequest) -> dict:
    """The registration token adds a host that has no key yet (the same key again is a no-op).
    A different key needs `replace: true` and either the admin token or a request signed by
    the host's current key (rotation: the X-Mailagent-* headers over the exact body, which
    holds the new key; no Authorization header)."""
    collector = _collector(request)
    grant = await auth.credential(request, await request.body(), payload.host)
    if grant.role not in ("registration", "admin", "host"):
        raise HTTPException(403, "this token cannot register hosts")
    may_replace = payload.replace and grant.role != "registration"
    try:
        result = await run_in_threadpool(
            store.register_host, collector.engine, payload.host, payload.public_key,
            may_replace, signed_key=grant.key_text, claim=_claim(grant))
    except store.BadKey as exc:
        raise HTTPException(422, str(exc)) from None
    except store.Replayed as exc:
        raise HTTPException(409, str(exc)) from None
    except store.KeyConflict as exc:
        if payload.replace and grant.role == "registration":
            raise HTTPException(403, "the registration token only adds new hosts; replacing "
                                "a key needs the admin token or the current key's signature")
        raise HTTPException(409, str(exc)) from None
    return {"host": payload.host, "result": result}


def _claim(grant: auth.Grant) -> store.NonceClaim | None:
    if grant.role != "host":
        return None
    return grant.host, grant.nonce, datetime.fromtimestamp(grant.at, timezone.utc)


@router.post("/api/v1/hosts/{host}/drained", tags=["hosts"], summary="Mark a host drained",
             responses={403: {"description": "Neither the admin token nor the host's own key"},
                        409: {"description": "Replayed nonce"}})
async def drained(request: Request, host: str, payload: DrainRequest) -> dict:
    """The admin token marks any host; a request signed by the host's own key (the
    X-Mailagent-* headers over the exact body, no Authorization header) marks only it."""
    collector = _collector(request)
    grant = await auth.credential(request, await request.body(), host)
    if grant.role not in ("admin", "host"):
        raise HTTPException(403, "marking a host drained needs the admin token or a request "
                            "signed by that host's key")
    try:
        found = await run_in_threadpool(store.set_drained, collector.engine, host,
                                        payload.drained, _claim(grant))
    except store.Replayed as exc:
        raise HTTPException(409, str(exc)) from None
    if not found:
        raise HTTPException(404, f"unknown host {host!r}")
    return {"host": host, "drained": payload.drained}


@router.delete("/api/v1/hosts/{host}", tags=["hosts"], summary="Forget a decommissioned host")
def delete_host(request: Request, host: str) -> dict:
    if auth.token_role(request) != "admin":
        raise HTTPException(403, "deleting a host needs the admin token")
    if not store.delete_host(_collector(request).engine, host):
        raise HTTPException(404, f"unknown host {host!r}")
    return {"host": host, "deleted": True}


@router.get("/api/v1/hosts", tags=["hosts"], summary="The fleet: latest figures per host",
            dependencies=_READ)
def get_hosts(request: Request) -> dict:
    return {"hosts": store.list_hosts(_collector(request).engine), "now": utcnow().isoformat()}


@router.get("/api/v1/hosts/{host}", tags=["hosts"], summary="One host with its history",
            dependencies=_READ)
def get_host(request: Request, host: str, hours: float | None = Query(
        default=None, gt=0, allow_inf_nan=False,
        description="History to return; at most what retention keeps (its longer window)")
             ) -> dict:
    collector = _collector(request)
    limit = collector.settings.history_hours_max()
    if hours is not None and hours > limit:
        raise RequestValidationError([{"type": "less_than_equal", "loc": ("query", "hours"),
                                       "msg": f"Input should be less than or equal to {limit}",
                                       "input": hours}])
    found = store.get_host(collector.engine, host, hours or collector.settings.history_hours)
    if found is None:
        raise HTTPException(404, f"unknown host {host!r}")
    return found


@router.get("/api/v1/alerts", tags=["alerts"], summary="Alerts, newest first", dependencies=_READ)
def get_alerts(request: Request, state: Literal["firing", "resolved"] | None = None,
               host: str | None = None) -> dict:
    return {"alerts": store.list_alerts(_collector(request).engine, state=state, host=host)}


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=PlainTextResponse,
            dependencies=_READ)
def get_metrics(request: Request) -> Response:
    collector = _collector(request)
    page = metrics.render(store.list_hosts(collector.engine), collector.counters,
                          collector.extra_metrics())
    return Response(page, media_type=metrics.CONTENT_TYPE)


@router.get("/healthz", tags=["ops"], summary="Liveness and database reachability (public)")
def healthz(request: Request) -> JSONResponse:
    try:
        with _collector(request).engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any database error means unhealthy
        return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
    return JSONResponse({"ok": True})
