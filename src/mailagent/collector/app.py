"""The web application: `create_app(settings)` wires the API, the dashboard and the lifespan."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from mailagent import __version__ as VERSION
from mailagent.collector import api, auth, dashboard
from mailagent.collector.fastpath import IngestFastPath
from mailagent.collector.service import Collector
from mailagent.collector.settings import CollectorSettings
from mailagent.report import Report


def create_app(settings: CollectorSettings, engine: Engine | None = None) -> FastAPI:
    """A FastAPI app serving the collector; the database is migrated when it starts."""
    collector = Collector(settings, engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await collector.start()
        try:
            yield
        finally:
            await collector.stop()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, and the collector must
    # not need the internet. The OpenAPI document is served at /openapi.json to readers.
    app = FastAPI(title="mailagent collector", version=VERSION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  description="Fleet mail-health collector: signed agent reports in, "
                  "history, alerts, dashboard and Prometheus metrics out.")
    app.state.collector = collector
    app.include_router(api.router)
    app.include_router(dashboard.router)
    app.add_middleware(IngestFastPath)
    app.add_exception_handler(auth.Refused, _refused)
    _document_report(app)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(auth.require_read)])
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app


async def _refused(_request: Request, exc: auth.Refused) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _document_report(app: FastAPI) -> None:
    """Put the Report wire schema into the OpenAPI components (ingest reads the raw body
    itself, because the signature covers its exact bytes)."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        report = Report.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(report.pop("$defs", {}))
        components["Report"] = report
        return schema

    app.openapi = openapi
