"""The JSON API: report ingest, host registration, fleet and alert listings, metrics, health."""

from __future__ import annotations

import secrets
from typing import Literal

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from mailagent.collector import metrics, store
from mailagent.collector.db import utcnow
from mailagent.collector.fastpath import answer_report
from mailagent.collector.service import Collector

router = APIRouter()


def _collector(request: Request) -> Collector:
    return request.app.state.collector


class RegisterRequest(BaseModel):
    """A host's identity, registered by the deploy."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$", description="Host name.")
    public_key: str = Field(max_length=64, description="base64 of the raw Ed25519 public key.")
    replace: bool = Field(default=False, description="Replace a different registered key.")


class DrainRequest(BaseModel):
    """Mark a host drained (it may go quiet without a host_silent alert) or back in service."""

    model_config = ConfigDict(extra="forbid")
    drained: bool = Field(description="True while the host is drained.")


def _require_token(collector: Collector, authorization: str | None) -> None:
    expected = collector.settings.registration_token
    if expected is None:
        raise HTTPException(403, "registration is disabled (no registration_token configured)")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
            token.encode(), expected.get_secret_value().encode()):
        raise HTTPException(401, "bad or missing registration token",
                            headers={"WWW-Authenticate": "Bearer"})


@router.post("/api/v1/reports", tags=["ingest"], summary="Submit a signed report",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"$ref": "#/components/schemas/Report"}}}}},
             responses={200: {"description": "Stored, or already stored (duplicate=true)"},
                        401: {"description": "Unknown host or stale timestamp"},
                        403: {"description": "Bad signature or report.host != signing host"},
                        409: {"description": "Replayed nonce"},
                        413: {"description": "Body over the size limit"},
                        422: {"description": "Not a valid report; the reasons are returned"},
                        503: {"description": "Storage unavailable; retry later"}})
async def post_report(request: Request) -> JSONResponse:
    # Normally answered by fastpath.IngestFastPath before routing; same logic either way.
    outcome = await answer_report(_collector(request), dict(request.headers), request.receive)
    return JSONResponse(outcome.payload(), status_code=outcome.status)


@router.post("/api/v1/hosts/register", tags=["hosts"], summary="Register a host's public key")
def register(request: Request, payload: RegisterRequest,
             authorization: str | None = Header(default=None)) -> dict:
    collector = _collector(request)
    _require_token(collector, authorization)
    try:
        result = store.register_host(collector.engine, payload.host, payload.public_key,
                                     payload.replace)
    except store.BadKey as exc:
        raise HTTPException(422, str(exc)) from None
    except store.KeyConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return {"host": payload.host, "result": result}


@router.post("/api/v1/hosts/{host}/drained", tags=["hosts"], summary="Mark a host drained")
def drained(request: Request, host: str, payload: DrainRequest,
            authorization: str | None = Header(default=None)) -> dict:
    collector = _collector(request)
    _require_token(collector, authorization)
    if not store.set_drained(collector.engine, host, payload.drained):
        raise HTTPException(404, f"unknown host {host!r}")
    return {"host": host, "drained": payload.drained}


@router.delete("/api/v1/hosts/{host}", tags=["hosts"], summary="Forget a decommissioned host")
def delete_host(request: Request, host: str,
                authorization: str | None = Header(default=None)) -> dict:
    collector = _collector(request)
    _require_token(collector, authorization)
    if not store.delete_host(collector.engine, host):
        raise HTTPException(404, f"unknown host {host!r}")
    return {"host": host, "deleted": True}


@router.get("/api/v1/hosts", tags=["hosts"], summary="The fleet: latest figures per host")
def get_hosts(request: Request) -> dict:
    return {"hosts": store.list_hosts(_collector(request).engine), "now": utcnow().isoformat()}


@router.get("/api/v1/hosts/{host}", tags=["hosts"], summary="One host with its history")
def get_host(request: Request, host: str, hours: float | None = None) -> dict:
    collector = _collector(request)
    found = store.get_host(collector.engine, host, hours or collector.settings.history_hours)
    if found is None:
        raise HTTPException(404, f"unknown host {host!r}")
    return found


@router.get("/api/v1/alerts", tags=["alerts"], summary="Alerts, newest first")
def get_alerts(request: Request, state: Literal["firing", "resolved"] | None = None,
               host: str | None = None) -> dict:
    return {"alerts": store.list_alerts(_collector(request).engine, state=state, host=host)}


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics", response_class=PlainTextResponse)
def get_metrics(request: Request) -> Response:
    collector = _collector(request)
    page = metrics.render(store.list_hosts(collector.engine), collector.counters,
                          collector.extra_metrics())
    return Response(page, media_type=metrics.CONTENT_TYPE)


@router.get("/healthz", tags=["ops"], summary="Liveness and database reachability")
def healthz(request: Request) -> JSONResponse:
    try:
        with _collector(request).engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any database error means unhealthy
        return JSONResponse({"ok": False, "error": type(exc).__name__}, status_code=503)
    return JSONResponse({"ok": True})
