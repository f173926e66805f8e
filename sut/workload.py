"""The ``/api/*`` workload (the user-path), every route under ``@controlled``.

| route | does | downstream pool |
|---|---|---|
| ``GET /api/whoami`` | which worker answered (pid, ppid) | no |
| ``GET /api/items`` | list items (flags: slow_path, items_cache, extra_downstream_call, |
| | items_order) | yes |
| ``GET /api/items/<id>`` | one item (flags: slow_path, extra_downstream_call) | yes |
| ``POST /api/items`` | create one (422 problem on bad fields) | yes |
| ``GET /api/cpu?ms=`` | burn this worker's loop for ms (stops at the request timeout) | no |
| ``GET /api/io?ms=`` | a downstream call that takes ms | yes |
| ``POST /api/session`` | sets a cookie | no |
| ``GET /api/legacy-items`` | 302 to /api/items | no |
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json, redirect

from sut.control.guard import controlled
from sut.control.state import Snapshot
from sut.metrics import instruments

__all__ = ["MAX_CPU_MS", "MAX_IO_MS", "install", "problem"]

MAX_CPU_MS = 2_000
MAX_IO_MS = 30_000
SLOW_PATH_S = 0.15
EXTRA_CALL_S = 0.025
CACHE_TTL_S = 2.0
_ORDER = {
    "id": "id",
    "newest": "created_at DESC, id DESC",
    "price": "price_cents, id",
}


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


async def _downstream(request: Request, seconds: float) -> None:
    """One call to the simulated downstream: a pool connection held for ``seconds``."""
    control = request.app.ctx.control
    snapshot: Snapshot = request.ctx.snapshot
    async with control.pool.connection(snapshot.settings.pool_acquire_timeout_s):
        await asyncio.sleep(seconds)


async def _flag_effects(request: Request) -> dict[str, str]:
    """slow_path and extra_downstream_call; returns the headers that show them."""
    snapshot: Snapshot = request.ctx.snapshot
    headers = {"X-Downstream-Calls": "1"}
    if snapshot.flag("slow_path") is True:
        await asyncio.sleep(SLOW_PATH_S)
        headers["X-Observastack-Path"] = "slow"
    if snapshot.flag("extra_downstream_call") is True:
        await _downstream(request, EXTRA_CALL_S)
        headers["X-Downstream-Calls"] = "2"
    return headers


def install(app: Sanic[Any, Any]) -> None:
    app.ctx.items_cache = {}

    @app.get("/api/whoami", error_format="json")
    @controlled
    async def whoami(request: Request) -> HTTPResponse:
        return json({"pid": os.getpid(), "ppid": os.getppid()})

    @app.get("/api/items", error_format="json")
    @controlled
    async def list_items(request: Request) -> HTTPResponse:
        limit = _bounded_int(request, "limit", 100, 1000)
        if isinstance(limit, HTTPResponse):
            return limit
        snapshot: Snapshot = request.ctx.snapshot
        order = str(snapshot.flag("items_order"))
        headers = await _flag_effects(request)
        key = (limit, order, snapshot.versions.data)
        cache: dict[tuple[int, str, int], tuple[float, dict[str, Any]]] = app.ctx.items_cache
        if snapshot.flag("items_cache") is True:
            hit = cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return json(hit[1], headers={**headers, "X-Cache": "HIT"})
            headers["X-Cache"] = "MISS"
        else:
            cache.clear()
        control = request.app.ctx.control
        async with control.pool.connection(snapshot.settings.pool_acquire_timeout_s):
            items = request.app.ctx.store.list(limit=limit, order_by=_ORDER.get(order, "id"))
        body = {"items": [i.to_json() for i in items], "count": len(items), "order": order}
        if snapshot.flag("items_cache") is True:
            cache[key] = (time.monotonic() + CACHE_TTL_S, body)
        return json(body, headers=headers)

    @app.get("/api/items/<item_id:int>", error_format="json")
    @controlled
    async def get_item(request: Request, item_id: int) -> HTTPResponse:
        headers = await _flag_effects(request)
        snapshot: Snapshot = request.ctx.snapshot
        control = request.app.ctx.control
        async with control.pool.connection(snapshot.settings.pool_acquire_timeout_s):
            item = request.app.ctx.store.get(item_id)
        if item is None:
            return problem(404, "Not found", f"no item with id {item_id}")
        return json(item.to_json(), headers=headers)

    @app.post("/api/items", error_format="json")
    @controlled
    async def create_item(request: Request) -> HTTPResponse:
        try:
            body = request.json
        except Exception:
            return problem(400, "Malformed JSON", "the request body is not valid JSON")
        errors = _item_errors(body)
        if errors:
            return problem(422, "Invalid item", "; ".join(errors), errors=errors)
        snapshot: Snapshot = request.ctx.snapshot
        control = request.app.ctx.control
        async with control.pool.connection(snapshot.settings.pool_acquire_timeout_s):
            item = request.app.ctx.store.create(body["name"], body["price_cents"])
        instruments().items_created.inc()
        return json(item.to_json(), status=201, headers={"Location": f"/api/items/{item.id}"})

    @app.get("/api/cpu", error_format="json")
    @controlled
    async def cpu(request: Request) -> HTTPResponse:
        ms = _bounded_int(request, "ms", 20, MAX_CPU_MS)
        if isinstance(ms, HTTPResponse):
            return ms
        # Deliberately blocks this worker's loop; stops at the request timeout (then 504).
        deadline = min(time.monotonic() + ms / 1000, request.ctx.deadline)
        digest, rounds = b"observastack", 0
        while time.monotonic() < deadline:
            digest = hashlib.sha256(digest).digest()
            rounds += 1
        return json({"ms": ms, "rounds": rounds, "digest": digest.hex()[:16]})

    @app.get("/api/io", error_format="json")
    @controlled
    async def io(request: Request) -> HTTPResponse:
        ms = _bounded_int(request, "ms", 50, MAX_IO_MS)
        if isinstance(ms, HTTPResponse):
            return ms
        await _downstream(request, ms / 1000)
        return json({"ms": ms, "pid": os.getpid()})

    @app.post("/api/session", error_format="json")
    @controlled
    async def session(request: Request) -> HTTPResponse:
        token = hashlib.sha256(os.urandom(16)).hexdigest()[:24]
        response = json({"session": "created"}, status=201)
        response.add_cookie("sid", token, httponly=True, samesite="Lax", secure=False)
        return response

    @app.get("/api/legacy-items", error_format="json")
    @controlled
    async def legacy(request: Request) -> HTTPResponse:
        return redirect("/api/items", status=302)


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
