"""The secure-gateway's token check: a tiny Sanic service for nginx ``auth_request``.

Data in: nginx's auth subrequest, carrying the client's ``Authorization`` header(s), the
original URI in ``X-Original-URI`` and method in ``X-Original-Method``. Data out: ``204`` plus
``X-Observastack-Subject`` when the token is valid, else ``401`` / ``403`` with
``WWW-Authenticate``, ``X-Observastack-Reason`` (nginx drops subrequest bodies) and an RFC 9457
``application/problem+json`` body; one JSON log line per decision (``observastack.identity``).

nginx keeps the original request method on the subrequest, so ``/authz`` answers every method.

Run it with ``python -m identity.authz``; it reads, once, at start::

    OBSERVASTACK_AUTHZ_HOST   listen address, default 127.0.0.1
    OBSERVASTACK_AUTHZ_PORT   listen port, default 8081
    OBSERVASTACK_JWT_* / OBSERVASTACK_JWKS_*   the validation policy (see identity.validation)

Validation runs inline on the event loop: a warm check costs about 0.1 ms; a JWKS fetch (cold
cache, unknown kid, expired cache) blocks for at most the fetch timeout and happens at most once
per refetch interval.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sanic import Request, Sanic, response
from sanic.response import HTTPResponse

from identity._errors import ConfigError
from identity.validation import Decision, TokenValidator, ValidationPolicy

__all__ = [
    "REASON_HEADER",
    "SUBJECT_HEADER",
    "AuthzSettings",
    "authz_response",
    "create_app",
    "main",
]

SUBJECT_HEADER = "X-Observastack-Subject"
# nginx drops the auth subrequest's body; the gateway reads the reason from this header instead.
REASON_HEADER = "X-Observastack-Reason"
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_TITLES = {401: "Unauthorized", 403: "Forbidden"}
_log = logging.getLogger("observastack.identity")


@dataclass(frozen=True)
class AuthzSettings:
    """Where the service listens."""

    host: str = "127.0.0.1"
    port: int = 8081

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthzSettings:
        host = environ.get("OBSERVASTACK_AUTHZ_HOST", "").strip() or cls.host
        raw_port = environ.get("OBSERVASTACK_AUTHZ_PORT", "").strip() or str(cls.port)
        try:
            port = int(raw_port)
        except ValueError:
            port = -1
        if not 1 <= port <= 65535:
            raise ConfigError(f"OBSERVASTACK_AUTHZ_PORT must be a port number, got {raw_port!r}")
        return cls(host=host, port=port)


def authz_response(decision: Decision) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body answering nginx for one decision (pure; no Sanic needed)."""
    if decision.ok:
        return 204, {SUBJECT_HEADER: decision.subject or ""}, b""
    problem = {
        "type": "about:blank",
        "title": _TITLES.get(decision.status, "Unauthorized"),
        "status": decision.status,
        "detail": decision.reason,
    }
    headers = {
        "WWW-Authenticate": decision.www_authenticate() or "Bearer",
        REASON_HEADER: decision.safe_reason(),
        "Content-Type": "application/problem+json",
        "Cache-Control": "no-store",
    }
    return decision.status, headers, json.dumps(problem).encode()


def create_app(validator: TokenValidator, *, name: str = "observastack-authz") -> Sanic[Any, Any]:
    """The Sanic app answering ``/authz`` and ``/healthz`` with ``validator``."""
    app: Sanic[Any, Any] = Sanic(name, configure_logging=False)
    # Sanic's maximum (default 8 KiB): a token over the policy limit must get our 401, because
    # nginx auth_request turns any status other than 2xx/401/403 (e.g. a 413) into a 500.
    app.config.REQUEST_MAX_HEADER_SIZE = 16384

    async def authz(request: Request) -> HTTPResponse:
        values = request.headers.getall("authorization", [])
        path = request.headers.get("x-original-uri") or request.path
        method = request.headers.get("x-original-method") or request.method
        decision = validator.check_authorization(values or None, path=path, method=method)
        status, headers, body = authz_response(decision)
        content_type = headers.pop("Content-Type", "text/plain")
        return response.raw(body, status=status, headers=headers, content_type=content_type)

    async def healthz(request: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    app.add_route(authz, "/authz", methods=_METHODS)
    app.add_route(healthz, "/healthz", methods=["GET", "HEAD"])
    return app


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("observastack")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def main(environ: Mapping[str, str] | None = None) -> int:
    """Read the configuration, warm the JWKS cache (best effort) and serve until stopped."""
    env = os.environ if environ is None else environ
    try:
        settings = AuthzSettings.from_env(env)
        policy = ValidationPolicy.from_env(env)
    except ConfigError as exc:
        print(f"identity.authz: {exc}", file=sys.stderr)
        return 2
    _configure_logging()
    validator = TokenValidator(policy)
    warm = validator.jwks.warm()
    _log.info(
        json.dumps(
            {
                "event": "authz_start",
                "host": settings.host,
                "port": settings.port,
                "profile": policy.profile,
                "issuer": policy.issuer,
                "audience": policy.audience,
                "jwks_url": policy.jwks_url,
                "jwks_warm": warm,
            }
        )
    )
    app = create_app(validator)
    app.run(
        host=settings.host, port=settings.port, single_process=True, access_log=False, motd=False
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
