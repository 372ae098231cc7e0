"""Serving the app with uvicorn (HTTPS when a certificate and key are configured).

With `workers` > 1, uvicorn starts that many processes on one listening socket; each builds
its app from the settings the parent hands over in an environment variable (inherited only
by the workers, readable only by the service's own user and root).
"""

from __future__ import annotations

import json
import os

import uvicorn
from uvicorn.supervisors import Multiprocess

from mailagent.collector import migrate
from mailagent.collector.app import create_app
from mailagent.collector.db import make_engine
from mailagent.collector.settings import CollectorSettings

_HANDOVER = "_MAILAGENT_COLLECTOR_SETTINGS_JSON"


def _handover(settings: CollectorSettings) -> str:
    return json.dumps(settings.revealed())


def app_from_environment():
    """uvicorn factory used by worker processes."""
    return create_app(CollectorSettings.model_validate_json(os.environ[_HANDOVER]))


def uvicorn_config(settings: CollectorSettings, log_level: str = "info") -> uvicorn.Config:
    """The uvicorn configuration for `settings`."""
    host, port = settings.listen_address()
    extra: dict = {}
    if settings.tls_cert is not None:
        extra.update(ssl_certfile=str(settings.tls_cert), ssl_keyfile=str(settings.tls_key))
    if settings.workers > 1:
        os.environ[_HANDOVER] = _handover(settings)
        app, extra["factory"], extra["workers"] = (
            "mailagent.collector.server:app_from_environment", True, settings.workers)
    else:
        app = create_app(settings)
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                          server_header=False, timeout_graceful_shutdown=10, **extra)


def serve(settings: CollectorSettings) -> None:
    """Migrate once, then run until SIGINT/SIGTERM (queued reports are answered first)."""
    engine = make_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    config = uvicorn_config(settings)
    if settings.workers > 1:
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run()
