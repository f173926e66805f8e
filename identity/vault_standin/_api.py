"""HTTP routing of the Vault stand-in: Vault's paths, methods, envelopes and error shapes.

``handle(state, method, path, headers, body)`` is pure request -> ``Reply`` logic, so it is
served by any HTTP server (``_server``) and tested without sockets. Responses follow Vault:
data endpoints wrap results in ``{"request_id", "lease_id", "data", "auth", ...}``; writes answer
204; the JWKS, discovery, introspection and health endpoints answer raw JSON; errors are
``{"errors": [...]}``. The token comes from ``X-Vault-Token`` or ``Authorization: Bearer``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from identity.vault_standin._common import VaultFailure
from identity.vault_standin._oidc import OidcBackend
from identity.vault_standin._state import VaultState

__all__ = ["STANDIN_VERSION", "Reply", "handle"]

STANDIN_VERSION = "1.17.0+observastack.standin"
_JSON = "application/json"

Body = Mapping[str, Any]
Handler = Callable[[VaultState, dict[str, str], str | None, Body], "Reply"]


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = _JSON


def _raw(value: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(value).encode())


def _envelope(data: object = None, auth: object = None, **extra: object) -> Reply:
    return _raw(
        {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": None,
            "auth": auth,
            **extra,
        }
    )


def _errors(status: int, *messages: str) -> Reply:
    return _raw({"errors": [m for m in messages if m]}, status)


_NO_CONTENT = Reply(204)


def _health(state: VaultState, _: dict[str, str], __: str | None, ___: Body) -> Reply:
    return _raw(
        {
            "initialized": True,
            "sealed": False,
            "standby": False,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()),
            "version": STANDIN_VERSION,
            "cluster_name": "observastack-vault-standin",
            "cluster_id": state.cluster_id,
            "observastack_standin": "not HashiCorp Vault: an in-memory stand-in for dev mode",
        }
    )


def _list_auth(state: VaultState, _: dict[str, str], token: str | None, __: Body) -> Reply:
    mounts = state.list_auth(token)
    return _envelope(mounts, **mounts)


def _policy_text(body: Body) -> object:
    text = body.get("policy", body.get("rules"))
    return json.dumps(text) if isinstance(text, dict) else text


def _state(state: VaultState) -> object:
    return state


def _oidc(state: VaultState) -> object:
    return state.oidc


def _write(
    op: Callable[..., None], *names: str, on: Callable[[VaultState], object] = _state
) -> Handler:
    def handler(state: VaultState, m: dict[str, str], token: str | None, body: Body) -> Reply:
        op(on(state), token, *(m[name] for name in names), body)
        return _NO_CONTENT

    return handler


def _read(
    op: Callable[..., Any], *names: str, on: Callable[[VaultState], object] = _state
) -> Handler:
    def handler(state: VaultState, m: dict[str, str], token: str | None, _: Body) -> Reply:
        return _envelope(op(on(state), token, *(m[name] for name in names)))

    return handler


def _routes() -> list[tuple[re.Pattern[str], dict[str, Handler]]]:
    seg = r"[^/]+"
    table: list[tuple[str, dict[str, Handler]]] = [
        ("/v1/sys/health", {"GET": _health, "HEAD": _health}),
        ("/v1/sys/auth", {"GET": _list_auth}),
        (f"/v1/sys/auth/(?P<path>{seg})", {"POST": _write(VaultState.enable_auth, "path")}),
        ("/v1/auth/token/lookup-self", {"GET": _read(VaultState.lookup_self)}),
        (
            f"/v1/auth/(?P<mount>{seg})/users/(?P<name>{seg})",
            {
                "POST": _write(VaultState.write_user, "mount", "name"),
                "GET": _read(VaultState.read_user, "mount", "name"),
            },
        ),
        (
            f"/v1/auth/(?P<mount>{seg})/login/(?P<name>{seg})",
            {"POST": lambda s, m, _t, b: _envelope(auth=s.login(m["mount"], m["name"], b))},
        ),
        (
            f"/v1/sys/policies/acl/(?P<name>{seg})",
            {
                "POST": lambda s, m, t, b: _policy_write(s, t, m["name"], b),
                "GET": lambda s, m, t, _b: _envelope(
                    {"name": m["name"].lower(), "policy": s.read_policy(t, m["name"])}
                ),
            },
        ),
        (
            f"/v1/sys/policy/(?P<name>{seg})",
            {
                "POST": lambda s, m, t, b: _policy_write(s, t, m["name"], b),
                "GET": lambda s, m, t, _b: _legacy_policy(s, t, m["name"]),
            },
        ),
        (
            "/v1/identity/oidc/config",
            {
                "POST": _write(OidcBackend.write_oidc_config, on=_oidc),
                "GET": _read(OidcBackend.read_oidc_config, on=_oidc),
            },
        ),
        (
            f"/v1/identity/oidc/key/(?P<name>{seg})/rotate",
            {"POST": _write(OidcBackend.rotate_key, "name", on=_oidc)},
        ),
        (
            f"/v1/identity/oidc/key/(?P<name>{seg})",
            {
                "POST": _write(OidcBackend.write_key, "name", on=_oidc),
                "GET": _read(OidcBackend.read_key, "name", on=_oidc),
            },
        ),
        (
            f"/v1/identity/oidc/role/(?P<name>{seg})",
            {
                "POST": _write(OidcBackend.write_role, "name", on=_oidc),
                "GET": _read(OidcBackend.read_role, "name", on=_oidc),
            },
        ),
        (
            f"/v1/identity/oidc/token/(?P<name>{seg})",
            {"GET": _read(OidcBackend.issue_token, "name", on=_oidc)},
        ),
        ("/v1/identity/oidc/.well-known/keys", {"GET": lambda s, _m, _t, _b: _raw(s.oidc.jwks())}),
        (
            "/v1/identity/oidc/.well-known/openid-configuration",
            {"GET": lambda s, _m, _t, _b: _raw(s.oidc.discovery())},
        ),
        (
            "/v1/identity/oidc/introspect",
            {"POST": lambda s, _m, t, b: _raw(s.oidc.introspect(t, b))},
        ),
    ]
    return [(re.compile(pattern), methods) for pattern, methods in table]


def _policy_write(state: VaultState, token: str | None, name: str, body: Body) -> Reply:
    state.write_policy(token, name, _policy_text(body))
    return _NO_CONTENT


def _legacy_policy(state: VaultState, token: str | None, name: str) -> Reply:
    rules = state.read_policy(token, name)
    return _envelope({"name": name.lower(), "rules": rules}, name=name.lower(), rules=rules)


_ROUTES = _routes()


def _token(headers: Mapping[str, str]) -> str | None:
    lowered = {name.lower(): value for name, value in headers.items()}
    token = lowered.get("x-vault-token", "").strip()
    if token:
        return token
    authorization = lowered.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _body(raw: bytes) -> Body:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise VaultFailure(400, f"failed to parse JSON input: {exc}") from None
    if not isinstance(value, dict):
        raise VaultFailure(400, "failed to parse JSON input: expected an object")
    return value


def handle(
    state: VaultState, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Reply:
    """Answer one request the way Vault's HTTP API would (for the supported subset)."""
    verb = "POST" if method.upper() == "PUT" else method.upper()
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        handler = methods.get(verb)
        if handler is None:
            return _errors(405, "unsupported operation")
        try:
            return handler(state, match.groupdict(), _token(headers), _body(body))
        except VaultFailure as failure:
            return _errors(failure.status, failure.message)
    route = path.removeprefix("/v1/")
    return _errors(404, f'no handler for route "{route}". route entry not found.')
