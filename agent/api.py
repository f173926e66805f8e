"""The agent's HTTP API (Sanic, one process), reached through the secure-path.

| route | token | answer |
|---|---|---|
| ``GET /agent/healthz`` | no | 200 while the bound master lives, else 503 (container healthcheck) |
| ``GET /agent/status`` | yes | master, workers, generation, uptimes, last signals |
| ``POST /agent/signals`` | yes | ``{"signal": "HUP"}`` → 202 with what went to which process |

Errors are RFC 9457 problem documents (``application/problem+json``: type, title, status, detail):
400 for bad signal input (nothing is sent), 401/403 from the token validator (with its
``WWW-Authenticate``), 503 when no master is visible or the target was refused. Every request is
logged once, as JSON, by the ``agent.audit`` logger: caller, method, path, signal, target pid,
status, result.

The token validator is injected (``identity.validation.TokenValidator`` in the service, a fake in
unit tests); it is called in a worker thread because it may fetch a JWKS over the network.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any, Protocol

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import BaseHTTPResponse, HTTPResponse
from sanic.response import json as json_response

from agent.audit import AUDIT_LOGGER, SignalRecord, utc_now
from agent.config import HEALTH_PATH
from agent.errors import InvalidSignal, MasterNotFound, SignalRefused
from agent.runtime import AgentCore
from agent.signals import TERMINAL_SIGNALS, Target, parse_signal_request

__all__ = ["HEALTH_PATH", "AuthDecision", "TokenChecker", "create_app", "problem"]

PROBLEM_JSON = "application/problem+json"
MAX_BODY_BYTES = 16 * 1024

audit_log = logging.getLogger(AUDIT_LOGGER)
error_log = logging.getLogger("agent.api")


class AuthDecision(Protocol):
    """What ``identity.validation.Decision`` offers the agent."""

    @property
    def ok(self) -> bool: ...
    @property
    def status(self) -> int: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    def www_authenticate(self) -> str | None: ...


class TokenChecker(Protocol):
    """What ``identity.validation.TokenValidator`` offers the agent."""

    def check_authorization(self, authorization: list[str], /, *, path: str) -> AuthDecision: ...


def problem(
    status: int, title: str, detail: str, *, kind: str, headers: dict[str, str] | None = None
) -> HTTPResponse:
    """An RFC 9457 problem document."""
    body = {"type": f"urn:observastack:agent:{kind}", "title": title, "status": status}
    return json_response(
        {**body, "detail": detail}, status=status, headers=headers, content_type=PROBLEM_JSON
    )


def create_app(
    core: AgentCore, validator: TokenChecker, *, name: str = "observastack-agent"
) -> Sanic[Any, Any]:
    """The Sanic app serving ``core``; every route but the health check needs a valid token."""
    app: Sanic[Any, Any] = Sanic(name, configure_logging=False, env_prefix=None)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # TouchUp rewrites methods of the Sanic *class* at startup, for the first app only; off, so an
    # agent app behaves the same whether or not another app started in this process (tests).
    app.config.TOUCHUP = False

    @app.middleware("request")
    async def authenticate(request: Request) -> HTTPResponse | None:
        request.ctx.audit = {"caller": None, "method": request.method, "path": request.path}
        if request.path == HEALTH_PATH:
            return None
        if request.method == "NONE":
            # Sanic's stand-in for a request it refused while parsing (e.g. headers too large):
            # let that error (413/431) through instead of calling it a missing token.
            request.ctx.audit.update(result="refused", reason="unparseable request")
            return None
        values = list(request.headers.getall("authorization", []))
        try:
            decision = await asyncio.to_thread(
                validator.check_authorization, values, path=request.path
            )
        except Exception:
            error_log.exception("token validator failed; refusing the request")
            request.ctx.audit.update(result="unauthorized", reason="validator error")
            return problem(
                401,
                "Unauthorized",
                "the token could not be validated",
                kind="unauthorized",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request.ctx.audit["caller"] = decision.subject
        if decision.ok:
            return None
        request.ctx.audit.update(result="unauthorized", reason=decision.reason)
        challenge = decision.www_authenticate()
        return problem(
            decision.status,
            "Forbidden" if decision.status == 403 else "Unauthorized",
            decision.reason,
            kind="forbidden" if decision.status == 403 else "unauthorized",
            headers={"WWW-Authenticate": challenge} if challenge else None,
        )

    @app.middleware("response")
    async def log_request(request: Request, response: BaseHTTPResponse) -> None:
        fields: dict[str, Any] = dict(getattr(request.ctx, "audit", None) or {})
        fields.setdefault("caller", None)
        fields.setdefault("method", request.method)
        fields.setdefault("path", request.path)
        fields["status"] = response.status
        fields.setdefault("result", "ok" if response.status < 400 else "error")
        audit_log.info("request", extra={"audit": fields})

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = exc.status_code
        headers = {str(k): str(v) for k, v in (exc.headers or {}).items()}
        return problem(
            status, str(exc.message or "error"), str(exc), kind=f"http-{status}", headers=headers
        )

    @app.exception(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> HTTPResponse:
        error_log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal error", "see the agent's log", kind="internal")

    @app.get(HEALTH_PATH)
    async def healthz(request: Request) -> HTTPResponse:
        if core.is_bound():
            return json_response(
                {"status": "ok", "master_pid": core.master.pid, "generation": core.generation}
            )
        return problem(503, "Master gone", _gone(core), kind="master-gone")

    @app.get("/agent/status")
    async def status(request: Request) -> HTTPResponse:
        try:
            return json_response(core.status())
        except MasterNotFound:
            return problem(503, "Master gone", _gone(core), kind="master-gone")

    @app.post("/agent/signals")
    async def send_signal(request: Request) -> HTTPResponse | None:
        audit: dict[str, Any] = request.ctx.audit
        body = request.body or b""
        if len(body) > MAX_BODY_BYTES:  # Sanic enforces REQUEST_MAX_SIZE only when serving itself
            _remember(core, audit, "<oversized>", None, None, "rejected", 413, "body too large")
            return problem(
                413,
                "Body too large",
                f"the body has {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted",
                kind="http-413",
            )
        try:
            requested, sig = parse_signal_request(body)
        except InvalidSignal as exc:
            asked = body[:40].decode("utf-8", "replace")
            _remember(core, audit, asked, None, None, "rejected", 400, str(exc))
            return problem(400, "Invalid signal request", str(exc), kind="invalid-signal")
        audit["signal"] = sig.name
        try:
            target = core.open_target()
        except SignalRefused as exc:
            _remember(core, audit, requested, sig, None, "refused", 503, str(exc))
            return problem(503, "Signal refused", str(exc), kind="signal-refused")
        with target:
            if sig in TERMINAL_SIGNALS:
                await _answer_then_send(request, core, target, requested, sig)
                return None
            try:
                target.send(sig)
            except SignalRefused as exc:
                _remember(core, audit, requested, sig, target, "refused", 503, str(exc))
                return problem(503, "Signal refused", str(exc), kind="signal-refused")
            _remember(core, audit, requested, sig, target, "delivered", 202, "sent")
            return json_response(_accepted(core, target, sig, "sent"), status=202)

    return app


async def _answer_then_send(
    request: Request, core: AgentCore, target: Target, requested: str, sig: signal.Signals
) -> None:
    """TERM and KILL end the backend's PID namespace, and the agent with it: answer first."""
    audit: dict[str, Any] = request.ctx.audit
    audit.update(target_pid=target.ident.pid, result="accepted")
    response = await request.respond(status=202, content_type="application/json")
    await response.send(json.dumps(_accepted(core, target, sig, "after_response")))
    await response.eof()
    try:
        target.send(sig)
    except SignalRefused as exc:
        error_log.warning("%s after the 202 answer was not sent: %s", sig.name, exc)
        _remember(core, dict(audit), requested, sig, target, "refused", 202, str(exc))
    else:
        _remember(
            core, dict(audit), requested, sig, target, "delivered", 202, "sent after answering"
        )


def _accepted(
    core: AgentCore, target: Target, sig: signal.Signals, delivery: str
) -> dict[str, Any]:
    return {
        "signal": sig.name,
        "delivered_to": target.ident.to_json(),
        "delivery": delivery,
        "generation": core.generation,
        "at": utc_now(),
    }


def _remember(
    core: AgentCore,
    audit: dict[str, Any],
    requested: str,
    sig: signal.Signals | None,
    target: Target | None,
    result: str,
    status: int,
    detail: str,
) -> None:
    ident = target.ident if target is not None else None
    audit.update(
        signal=sig.name if sig else None,
        target_pid=ident.pid if ident else None,
        result=result,
        reason=detail,
    )
    core.history.add(
        SignalRecord(
            at=utc_now(),
            caller=audit.get("caller"),
            requested=requested,
            signal=sig.name if sig else None,
            target_pid=ident.pid if ident else None,
            target_create_time=ident.create_time if ident else None,
            result=result,
            status=status,
            detail=detail,
        )
    )


def _gone(core: AgentCore) -> str:
    return (
        f"the bound master {core.master.pid} (started {core.master.create_time}) is gone; the "
        "agent exits and comes back bound to the backend's new PID namespace"
    )
