"""Routes of the SUT: ``/healthz``, the ``/api/*`` workload and ``/metrics``.

``create_asgi()`` is the factory Gunicorn loads (``'sut.app:create_asgi()'``): it builds the Sanic
app and wraps it in ``ListHeaders`` so the native asgi worker keeps Sanic's headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse, json, raw, redirect

from sut.asgi import ASGIApp, ListHeaders
from sut.config import SutConfig
from sut.metrics import CONTENT_TYPE_LATEST, exposition, instruments
from sut.store import ItemStore

__all__ = ["create_app", "create_asgi"]

MAX_CPU_MS = 2_000
MAX_IO_MS = 30_000


def problem(status: int, title: str, detail: str, **extra: Any) -> HTTPResponse:
    """An RFC 9457 problem response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return json(body, status=status, content_type="application/problem+json")


def _bounded_int(request: Request, name: str, default: int, hi: int) -> int | HTTPResponse:
    raw_value = request.args.get(name, str(default))
    try:
        value = int(raw_value)
    except ValueError:
        return problem(400, "Bad query parameter", f"{name}={raw_value!r} is not an integer")
    if not 0 <= value <= hi:
        return problem(400, "Bad query parameter", f"{name}={value} is outside 0..{hi}")
    return value


def create_app(config: SutConfig | None = None) -> Sanic[Any, Any]:
    config = config or SutConfig.from_env()
    app: Sanic[Any, Any] = Sanic("observastack_sut")
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False  # Gunicorn writes the access log (and reopens it on USR1)
    app.config.KEEP_ALIVE_TIMEOUT = 5

    @app.before_server_start
    async def open_store(app: Sanic[Any, Any]) -> None:
        app.ctx.store = ItemStore(config.data_dir / "items.sqlite3")
        instruments().workers_live.set(1)

    @app.after_server_stop
    async def close_store(app: Sanic[Any, Any]) -> None:
        app.ctx.store.close()

    @app.on_request
    async def start_timer(request: Request) -> None:
        request.ctx.started = time.perf_counter()

    async def observe(request: Request, response: BaseHTTPResponse) -> None:
        started = getattr(request.ctx, "started", None)
        if started is None or request.path == "/metrics":
            return
        route = request.route.path if request.route else "<unmatched>"
        labels = {"route": "/" + route.lstrip("/"), "method": request.method}
        labels["status"] = str(response.status)
        ins = instruments()
        ins.requests.labels(**labels).inc()
        ins.latency.labels(**labels).observe(time.perf_counter() - started)

    app.register_middleware(observe, "response")

    @app.get("/healthz")
    async def healthz(request: Request) -> HTTPResponse:
        return json({"status": "ok", "pid": os.getpid()})

    @app.get("/metrics")
    async def metrics(request: Request) -> HTTPResponse:
        return raw(exposition(), content_type=CONTENT_TYPE_LATEST)

    @app.get("/api/whoami")
    async def whoami(request: Request) -> HTTPResponse:
        return json({"pid": os.getpid(), "ppid": os.getppid()})

    @app.get("/api/items")
    async def list_items(request: Request) -> HTTPResponse:
        limit = _bounded_int(request, "limit", 100, 1000)
        if isinstance(limit, HTTPResponse):
            return limit
        items = request.app.ctx.store.list(limit=limit)
        return json({"items": [i.to_json() for i in items], "count": len(items)})

    @app.get("/api/items/<item_id:int>")
    async def get_item(request: Request, item_id: int) -> HTTPResponse:
        item = request.app.ctx.store.get(item_id)
        if item is None:
            return problem(404, "Not found", f"no item with id {item_id}")
        return json(item.to_json())

    @app.post("/api/items")
    async def create_item(request: Request) -> HTTPResponse:
        try:
            body = request.json
        except Exception:
            return problem(400, "Malformed JSON", "the request body is not valid JSON")
        errors = _item_errors(body)
        if errors:
            return problem(422, "Invalid item", "; ".join(errors), errors=errors)
        item = request.app.ctx.store.create(body["name"], body["price_cents"])
        instruments().items_created.inc()
        return json(item.to_json(), status=201, headers={"Location": f"/api/items/{item.id}"})

    @app.get("/api/cpu")
    async def cpu(request: Request) -> HTTPResponse:
        ms = _bounded_int(request, "ms", 20, MAX_CPU_MS)
        if isinstance(ms, HTTPResponse):
            return ms
        deadline = time.perf_counter() + ms / 1000
        digest, rounds = b"observastack", 0
        while time.perf_counter() < deadline:  # deliberately blocks this worker's loop
            digest = hashlib.sha256(digest).digest()
            rounds += 1
        return json({"ms": ms, "rounds": rounds, "digest": digest.hex()[:16]})

    @app.get("/api/io")
    async def io(request: Request) -> HTTPResponse:
        ms = _bounded_int(request, "ms", 50, MAX_IO_MS)
        if isinstance(ms, HTTPResponse):
            return ms
        await asyncio.sleep(ms / 1000)  # a downstream call that takes a while
        return json({"ms": ms, "pid": os.getpid()})

    @app.post("/api/session")
    async def session(request: Request) -> HTTPResponse:
        token = hashlib.sha256(os.urandom(16)).hexdigest()[:24]
        response = json({"session": "created"}, status=201)
        response.add_cookie("sid", token, httponly=True, samesite="Lax", secure=False)
        return response

    @app.get("/api/legacy-items")
    async def legacy(request: Request) -> HTTPResponse:
        return redirect("/api/items", status=302)

    return app


def _item_errors(body: object) -> list[str]:
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    errors = [f"unknown field {key!r}" for key in body if key not in ("name", "price_cents")]
    name, price = body.get("name"), body.get("price_cents")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        errors.append("name must be a string of 1..100 characters")
    if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= 10**9:
        errors.append("price_cents must be an integer in 0..1000000000")
    return errors


def create_asgi() -> ASGIApp:
    """Gunicorn entry point: the Sanic app behind the header fix."""
    return ListHeaders(create_app())
