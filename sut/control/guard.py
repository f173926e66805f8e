"""What the runtime config and the faults do to ``/api/*`` requests.

``@controlled`` wraps each ``/api/*`` handler. In order:

1. refresh this worker's view of the control state (every request: changes apply at once);
2. the shared rate limit: over it, 429 with ``Retry-After``;
3. within the request timeout (else 504): matching latency faults sleep, matching error faults
   answer their status (the first N only, if asked), then the handler runs; a handler that
   cannot get a pool connection in time ends in 503 with ``Retry-After``.

Every answer carries ``X-Observastack-Config-Version`` and ``X-Observastack-Flags-Version`` (what
this worker had in effect), and ``X-Observastack-Fault`` names the faults that acted on it.
``/healthz``, ``/metrics`` and ``/config/*`` are never wrapped: no fault can lock the control
plane out.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from sut.control.limits import PoolExhausted, retry_after
from sut.control.state import ActiveFault, Snapshot
from sut.metrics import instruments

__all__ = ["controlled", "route_label"]

Handler = Callable[..., Awaitable[HTTPResponse]]
PROBLEM_JSON = "application/problem+json"
_pick = random.random


def route_label(request: Request) -> str:
    return "/" + request.route.path.lstrip("/") if request.route else "<unmatched>"


def _problem(status: int, title: str, detail: str, kind: str, **headers: str) -> HTTPResponse:
    body = {"type": f"urn:observastack:sut:{kind}", "title": title, "status": status}
    return json_response(
        {**body, "detail": detail},
        status=status,
        headers={k.replace("_", "-"): v for k, v in headers.items()} or None,
        content_type=PROBLEM_JSON,
    )


def controlled(handler: Handler) -> Handler:
    @wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        control = request.app.ctx.control
        snapshot: Snapshot = control.refresh()
        request.ctx.snapshot = snapshot
        request.ctx.applied_faults = []
        response = await _guarded(request, snapshot, handler, args, kwargs)
        response.headers["X-Observastack-Config-Version"] = str(snapshot.config.version)
        response.headers["X-Observastack-Flags-Version"] = str(snapshot.versions.flags)
        if request.ctx.applied_faults:
            response.headers["X-Observastack-Fault"] = ",".join(request.ctx.applied_faults)
        return response

    return wrapper


async def _guarded(
    request: Request,
    snapshot: Snapshot,
    handler: Handler,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> HTTPResponse:
    control = request.app.ctx.control
    settings = snapshot.settings
    route = route_label(request)
    rejections = instruments().rejections
    if settings.rate_limit_enabled:
        wait = control.bucket.take(settings.rate_limit_rps, settings.rate_limit_burst)
        if wait is not None:
            rejections.labels(reason="rate_limited", route=route).inc()
            return _problem(
                429,
                "Too many requests",
                f"over the rate limit of {settings.rate_limit_rps:g} requests/s (burst "
                f"{settings.rate_limit_burst}); a request fits again in {wait:.3f} s",
                "rate-limited",
                Retry_After=retry_after(wait),
            )
    timeout = settings.request_timeout_s
    request.ctx.deadline = time.monotonic() + timeout
    try:
        response = await asyncio.wait_for(
            _faulted(request, snapshot, handler, args, kwargs, route), timeout
        )
    except TimeoutError:
        response = None
    except PoolExhausted as exc:
        rejections.labels(reason="pool_exhausted", route=route).inc()
        return _problem(
            503,
            "Downstream pool exhausted",
            f"{exc}; pool size {settings.pool_size}, acquire timeout "
            f"{settings.pool_acquire_timeout_s:g} s",
            "pool-exhausted",
            Retry_After="1",
        )
    if response is None or time.monotonic() > request.ctx.deadline:
        rejections.labels(reason="timeout", route=route).inc()
        return _problem(
            504,
            "Request timeout",
            f"the request ran longer than the configured timeout of {timeout:g} s "
            "(request_timeout_ms)",
            "timeout",
        )
    return response


async def _faulted(
    request: Request,
    snapshot: Snapshot,
    handler: Handler,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    route: str,
) -> HTTPResponse:
    control = request.app.ctx.control
    now = control.clock()
    matching = [a for a in snapshot.faults if a.matches(request.path, now)]
    effects = instruments().fault_effects
    for active in (a for a in matching if a.fault.kind == "latency"):
        params = active.fault.params
        if _pick() < float(params["probability"]):
            delay_ms = int(params["fixed_ms"]) + _pick() * int(params["jitter_ms"])
            request.ctx.applied_faults.append(active.fault.id)
            effects.labels(kind="latency", route=route).inc()
            await asyncio.sleep(delay_ms / 1000)
    for active in (a for a in matching if a.fault.kind == "error"):
        if _error_applies(control, active):
            status = int(active.fault.params["status"])
            request.ctx.applied_faults.append(active.fault.id)
            effects.labels(kind="error", route=route).inc()
            return _problem(
                status,
                "Injected fault",
                f"fault {active.fault.id} answered {status} for {request.path}",
                "injected-fault",
            )
    return await handler(request, *args, **kwargs)


def _error_applies(control: Any, active: ActiveFault) -> bool:
    params = active.fault.params
    first_n = params.get("first_n")
    if first_n is not None and not control.store.take_first_n(active.fault.id, int(first_n)):
        return False
    return _pick() < float(params["probability"])
