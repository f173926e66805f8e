"""HTTP plumbing shared by the ``/config/*`` routes: problem answers, JSON bodies, If-Match,
the caller's identity and the audit line.

Caller identity: the secure-gateway validates the token and sets ``X-Observastack-Subject`` (it
overwrites what a client sent; the other gateways blank it). Without it the request did not come
through the secure-path, and ``/config/*`` answers 403 (``OBSERVASTACK_CONTROL_REQUIRE_SUBJECT``).

Audit: every change request (accepted or rejected) writes exactly one JSON line on the
``sut.audit`` logger: event, caller, request id, status, result and what changed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from sut.control.errors import (
    ControlFailure,
    Forbidden,
    Malformed,
    PreconditionRequired,
    TooLarge,
    UnsupportedMediaType,
)
from sut.metrics import instruments

__all__ = [
    "AUDIT_LOGGER",
    "MAX_BODY_BYTES",
    "PROBLEM_JSON",
    "SUBJECT_HEADER",
    "Change",
    "IfMatch",
    "caller_of",
    "change",
    "configure_audit_log",
    "if_match",
    "problem",
    "read_json",
    "reader",
]

AUDIT_LOGGER = "sut.audit"
PROBLEM_JSON = "application/problem+json"
SUBJECT_HEADER = "x-observastack-subject"
MAX_BODY_BYTES = 16 * 1024
_HANDLER_NAME = "observastack-sut-audit"

audit_log = logging.getLogger(AUDIT_LOGGER)


class _AuditFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "logger": record.name,
            **getattr(record, "audit", {}),
        }
        return json.dumps(line, default=str, separators=(",", ":"))


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time of the record."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_audit_log() -> None:
    """One JSON line per change on stdout (the container log). Idempotent."""
    if any(h.get_name() == _HANDLER_NAME for h in audit_log.handlers):
        return
    handler = _StdoutHandler()
    handler.setFormatter(_AuditFormatter())
    handler.set_name(_HANDLER_NAME)
    audit_log.addHandler(handler)
    audit_log.setLevel(logging.INFO)


def problem(failure: ControlFailure) -> HTTPResponse:
    return json_response(
        failure.body(),
        status=failure.status,
        headers=failure.headers or None,
        content_type=PROBLEM_JSON,
    )


def caller_of(request: Request) -> str | None:
    raw = request.headers.get(SUBJECT_HEADER, "").strip()
    return raw[:200] if raw else None


def _require_secure_path(request: Request) -> None:
    if request.app.ctx.control.config.control_require_subject and not caller_of(request):
        raise Forbidden(
            "the control API is served through the secure-path only (no verified subject "
            f"in {SUBJECT_HEADER}); call it via the secure-gateway with a token"
        )


def read_json(request: Request) -> Any:
    body = request.body or b""
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(f"the body has {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    media = (request.headers.get("content-type") or "application/json").split(";")[0].strip()
    media = media.lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"the body must be JSON (Content-Type application/json), got {media!r}"
        )
    if not body.strip():
        raise Malformed("the body is empty; send a JSON object")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise Malformed("the body is not valid JSON") from None


@dataclass(frozen=True)
class IfMatch:
    """A parsed If-Match header (RFC 9110 §13.1.1: strong comparison)."""

    any: bool
    tags: frozenset[str]

    def matches(self, etag: str | None) -> bool:
        if etag is None:
            return False
        return self.any or etag in self.tags


def if_match(request: Request, *, required: bool) -> IfMatch | None:
    raw = request.headers.get("if-match")
    if raw is None:
        if required:
            raise PreconditionRequired(
                "this change needs If-Match: send the ETag from the last GET (or * to "
                "overwrite whatever is there). Nothing was changed"
            )
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    return IfMatch(any="*" in parts, tags=frozenset(p for p in parts if p.startswith('"')))


@dataclass
class Change:
    """What a change handler reports for the audit line."""

    response: HTTPResponse
    fields: dict[str, Any]


Handler = Callable[..., Awaitable[HTTPResponse]]
ChangeHandler = Callable[..., Awaitable[Change]]


def reader(handler: Handler) -> Handler:
    """A read-only /config route: secure-path check, failures as problem documents."""

    @wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        try:
            _require_secure_path(request)
            request.app.ctx.control.refresh()
            return await handler(request, *args, **kwargs)
        except ControlFailure as failure:
            return problem(failure)

    return wrapper


def change(event: str) -> Callable[[ChangeHandler], Handler]:
    """A /config route that changes state: one audit line and one counter increment each."""

    def decorate(handler: ChangeHandler) -> Handler:
        @wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            line: dict[str, Any] = {
                "event": event,
                "caller": caller_of(request),
                "request_id": request.headers.get("x-request-id"),
                "method": request.method,
                "path": request.path,
                "pid": os.getpid(),
            }
            try:
                _require_secure_path(request)
                request.app.ctx.control.refresh()
                done = await handler(request, *args, **kwargs)
            except ControlFailure as failure:
                line.update(status=failure.status, result="rejected", reason=failure.detail)
                _emit(event, line)
                return problem(failure)
            line.update(status=done.response.status, result="ok", **done.fields)
            _emit(event, line)
            # This worker serves the change at once, and its gauges, hogs and the desired-workers
            # file follow now rather than on the next tick.
            request.app.ctx.control.tick()
            return done.response

        return wrapper

    return decorate


def _emit(event: str, line: dict[str, Any]) -> None:
    audit_log.info(event, extra={"audit": line})
    instruments().control_changes.labels(action=event, result=line["result"]).inc()
