"""The SUT's Sanic app: ``/healthz``, ``/metrics``, the ``/api/*`` workload and ``/config/*``.

``create_asgi()`` is the factory Gunicorn loads (``'sut.app:create_asgi()'``): it builds the Sanic
app and wraps it in ``ListHeaders`` so the native asgi worker keeps Sanic's headers.
``create_app(config, name=..., clock=...)`` builds a bare app (unit tests run several in one
process, each with its own name, directories and clock).

Each worker opens its own handles when its server starts (``before_server_start``): the items
store and the application channel's ``Control`` (see ``sut.control``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import BaseHTTPResponse, HTTPResponse, json, raw

from sut import workload
from sut.asgi import ASGIApp, ListHeaders
from sut.config import SutConfig
from sut.control import config_api, faults_api, flags_api
from sut.control.guard import route_label
from sut.control.http import configure_audit_log, reader
from sut.control.openapi import openapi_document
from sut.control.runtime import Control
from sut.metrics import CONTENT_TYPE_LATEST, exposition, instruments
from sut.store import ItemStore

__all__ = ["create_app", "create_asgi"]

PROBLEM_JSON = "application/problem+json"


def create_app(
    config: SutConfig | None = None,
    *,
    name: str = "observastack_sut",
    clock: Callable[[], float] | None = None,
) -> Sanic[Any, Any]:
    config = config or SutConfig.from_env()
    app: Sanic[Any, Any] = Sanic(name)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False  # Gunicorn writes the access log (and reopens it on USR1)
    app.config.KEEP_ALIVE_TIMEOUT = 5
    # TouchUp rewrites methods of the Sanic class for the first app only; off, so every app in a
    # process (unit tests) behaves the same.
    app.config.TOUCHUP = False
    # Every route names error_format="json": otherwise Sanic parses each handler's source to guess
    # it (about 4 ms a route, on every app start). Errors are problem documents anyway.
    app.ctx.sut_config = config

    @app.before_server_start
    async def open_handles(app: Sanic[Any, Any]) -> None:
        configure_audit_log()
        app.ctx.store = ItemStore(config.data_dir / "items.sqlite3")
        app.ctx.control = Control(config, clock=clock or time.time)
        app.ctx.openapi = openapi_document(app.ctx.control.limits)
        app.ctx.control.start()
        instruments().workers_live.set(1)

    @app.after_server_stop
    async def close_handles(app: Sanic[Any, Any]) -> None:
        await app.ctx.control.close()
        app.ctx.store.close()

    @app.on_request
    async def start_timer(request: Request) -> None:
        request.ctx.started = time.perf_counter()

    async def observe(request: Request, response: BaseHTTPResponse) -> None:
        started = getattr(request.ctx, "started", None)
        if started is None or request.path == "/metrics":
            return
        labels = {"route": route_label(request), "method": request.method}
        labels["status"] = str(response.status)
        ins = instruments()
        ins.requests.labels(**labels).inc()
        ins.latency.labels(**labels).observe(time.perf_counter() - started)

    app.register_middleware(observe, "response")

    @app.exception(SanicException)
    async def http_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = exc.status_code
        headers = {str(k): str(v) for k, v in (exc.headers or {}).items()}
        body = {"type": "about:blank", "title": str(exc.message or "Error"), "status": status}
        return json(
            {**body, "detail": str(exc)}, status=status, headers=headers, content_type=PROBLEM_JSON
        )

    @app.get("/healthz", error_format="json")
    async def healthz(request: Request) -> HTTPResponse:
        return json({"status": "ok", "pid": os.getpid()})

    @app.get("/metrics", error_format="json")
    async def metrics(request: Request) -> HTTPResponse:
        return raw(exposition(), content_type=CONTENT_TYPE_LATEST)

    @app.get("/config/openapi.json", error_format="json")
    @reader
    async def openapi(request: Request) -> HTTPResponse:
        return json(request.app.ctx.openapi)

    workload.install(app)
    config_api.install(app)
    faults_api.install(app)
    flags_api.install(app)
    return app


def create_asgi() -> ASGIApp:
    """Gunicorn entry point: the Sanic app behind the header fix."""
    return ListHeaders(create_app())
