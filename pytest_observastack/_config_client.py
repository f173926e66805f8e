"""Typed client of the SUT's application channel: ``/config/*`` through the secure-path.

Data in: an ``httpx.Client`` whose base URL is the secure-path and whose auth adds a fresh bearer
token (the ``secure_client`` fixture). Data out: ``RuntimeConfig``, ``Fault`` and ``Flag``
snapshots, and errors::

    ControlError (pytest_observastack._errors)
     └── ControlRequestRejected     the backend answered 4xx with a problem document
          ├── InvalidControlInput   400, 413, 415, 422: ``errors`` names each bad field
          ├── VersionConflict       409, 412, 428: a concurrent change, or over a limit
          └── ControlObjectNotFound 404: no such fault or flag

A rejected request changed nothing on the backend (its validation and its write are one
transaction). Anything else (5xx, transport errors, an unexpected shape) is a plain
``ControlError`` whose message says what was seen and what to check.

``set_config(**changes)`` sends a JSON merge patch with ``If-Match``: it reads the current ETag
first and, when another writer got in between (412), reads it again and retries (a patch names
only what it changes, so re-applying it is what the caller meant). Pass ``if_match=`` to get
strict compare-and-set instead: a stale ETag raises ``VersionConflict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_observastack._errors import ControlError
from pytest_observastack._http import json_object as _json

__all__ = [
    "ConfigClient",
    "ControlObjectNotFound",
    "ControlRequestRejected",
    "Fault",
    "Flag",
    "InvalidControlInput",
    "RuntimeConfig",
    "VersionConflict",
]

_HINT = "is the secure-gateway up and the backend healthy (observastack status)?"


class ControlRequestRejected(ControlError):
    """The backend refused a ``/config`` request; ``problem`` is its RFC 9457 document."""

    def __init__(self, message: str, *, status: int, problem: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.problem = dict(problem)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.problem.get("errors") or [])


class InvalidControlInput(ControlRequestRejected):
    """400 / 413 / 415 / 422: the request was malformed or named bad fields."""


class VersionConflict(ControlRequestRejected):
    """409 / 412 / 428: the object changed since it was read, or a limit was reached."""


class ControlObjectNotFound(ControlRequestRejected):
    """404: no such fault or flag (or it is not active any more)."""


@dataclass(frozen=True)
class RuntimeConfig:
    """One ``GET /config/runtime``: the settings, their version and ETag."""

    version: int
    etag: str
    settings: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]

    @classmethod
    def from_response(cls, response: httpx.Response) -> RuntimeConfig:
        body = _json(response)
        settings = {k: v for k, v in body.items() if k not in ("version", "updated_at")}
        return cls(int(body["version"]), response.headers.get("etag", ""), settings)


@dataclass(frozen=True)
class Fault:
    id: str
    kind: str
    params: Mapping[str, Any]
    duration_s: float
    created_at: float
    expires_at: float
    remaining_s: float
    state: str
    created_by: str | None
    matched: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fault:
        try:
            return cls(
                id=str(data["id"]),
                kind=str(data["kind"]),
                params=dict(data["params"]),
                duration_s=float(data["duration_s"]),
                created_at=float(data["created_at"]),
                expires_at=float(data["expires_at"]),
                remaining_s=float(data["remaining_s"]),
                state=str(data["state"]),
                created_by=data.get("created_by"),
                matched=int(data.get("matched", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError(
                f"a fault is not in the expected shape ({exc!r}): {data!r:.300}"
            ) from exc


@dataclass(frozen=True)
class Flag:
    name: str
    type: str
    value: bool | str
    variants: tuple[str, ...] | None
    description: str
    version: int
    known: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Flag:
        try:
            variants = data.get("variants")
            return cls(
                name=str(data["name"]),
                type=str(data["type"]),
                value=data["value"],
                variants=tuple(variants) if variants is not None else None,
                description=str(data.get("description", "")),
                version=int(data["version"]),
                known=bool(data.get("known", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError(
                f"a flag is not in the expected shape ({exc!r}): {data!r:.300}"
            ) from exc


class ConfigClient:
    """Runtime config, faults, flags and state of the SUT, through the secure-path."""

    def __init__(self, http: httpx.Client, *, conflict_retries: int = 3) -> None:
        self.http = http
        self.conflict_retries = conflict_retries

    # -- runtime config ----------------------------------------------------------------------

    def get_config(self) -> RuntimeConfig:
        return RuntimeConfig.from_response(self._call("GET", "/config/runtime"))

    def set_config(self, *, if_match: str | None = None, **changes: Any) -> RuntimeConfig:
        """Change the named settings (nested ones as dicts: ``rate_limit={"rps": 5}``)."""
        if not changes:
            raise ValueError("set_config() needs at least one setting to change")
        attempts = 1 if if_match is not None else 1 + self.conflict_retries
        for attempt in range(attempts):
            etag = if_match if if_match is not None else self.get_config().etag
            try:
                response = self._call(
                    "PATCH", "/config/runtime", json=changes, headers={"If-Match": etag}
                )
            except VersionConflict as exc:
                if exc.status != 412 or attempt == attempts - 1:
                    raise
                continue
            return RuntimeConfig.from_response(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def replace_config(self, settings: Mapping[str, Any], *, if_match: str) -> RuntimeConfig:
        """PUT every setting at once (compare-and-set on ``if_match``)."""
        response = self._call(
            "PUT", "/config/runtime", json=dict(settings), headers={"If-Match": if_match}
        )
        return RuntimeConfig.from_response(response)

    # -- faults ------------------------------------------------------------------------------

    def inject(self, kind: str, *, duration_s: float, **params: Any) -> Fault:
        """Inject a fault: ``inject("latency", duration_s=30, fixed_ms=200, route="/api/*")``."""
        body = {"kind": kind, "duration_s": duration_s, "params": params}
        return Fault.from_json(_json(self._call("POST", "/config/faults", json=body)))

    def faults(self) -> list[Fault]:
        body = _json(self._call("GET", "/config/faults"))
        return [Fault.from_json(item) for item in body.get("faults", [])]

    def fault(self, fault_id: str) -> Fault:
        return Fault.from_json(_json(self._call("GET", f"/config/faults/{fault_id}")))

    def delete_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/config/faults/{fault_id}")

    def clear_faults(self) -> list[str]:
        """All-clear; returns the ids of the faults that were active."""
        return [str(i) for i in _json(self._call("DELETE", "/config/faults")).get("cleared", [])]

    # -- flags -------------------------------------------------------------------------------

    def set_flag(
        self,
        name: str,
        value: bool | str,
        *,
        variants: list[str] | None = None,
        description: str | None = None,
    ) -> Flag:
        body: dict[str, Any] = {"value": value}
        if variants is not None:
            body["variants"] = variants
        if description is not None:
            body["description"] = description
        return Flag.from_json(_json(self._call("PUT", f"/config/flags/{name}", json=body)))

    def flags(self) -> dict[str, Flag]:
        body = _json(self._call("GET", "/config/flags"))
        return {item["name"]: Flag.from_json(item) for item in body.get("flags", [])}

    def delete_flag(self, name: str) -> None:
        self._call("DELETE", f"/config/flags/{name}")

    # -- state -------------------------------------------------------------------------------

    def reset_state(self, scope: str = "data") -> dict[str, Any]:
        """``data``: empty the items; ``all``: also config defaults, no flags, no faults."""
        return _json(self._call("POST", "/config/state/reset", params={"scope": scope}))

    def seed(self, items: int) -> int:
        """Replace the items with ``items`` generated ones; returns the count."""
        body = _json(self._call("POST", "/config/state/seed", params={"items": items}))
        return int(body["items"])

    def openapi(self) -> dict[str, Any]:
        return _json(self._call("GET", "/config/openapi.json"))

    # -- plumbing ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ControlError(
                f"{method} {path} failed: {type(exc).__name__}: {exc}; {_HINT}"
            ) from exc
        if response.status_code < 400:
            return response
        raise _rejection(method, path, response)


def _rejection(method: str, path: str, response: httpx.Response) -> ControlError:
    status = response.status_code
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return ControlError(
            f"{method} {path} answered {status} with {response.text[:200]!r}; {_HINT}"
        )
    detail = f"{problem.get('title', 'error')}: {problem.get('detail', '')}"
    message = f"{method} {path} was refused ({status} {detail})"
    if status in (400, 413, 415, 422):
        return InvalidControlInput(
            f"{message}; nothing was changed. Fix the request and send it again",
            status=status,
            problem=problem,
        )
    if status in (409, 412, 428):
        return VersionConflict(
            f"{message}. Read the object again (its ETag changed) or wait for faults to expire",
            status=status,
            problem=problem,
        )
    if status == 404:
        return ControlObjectNotFound(message, status=status, problem=problem)
    if status in (401, 403):
        return ControlRequestRejected(
            f"{message}; is the token valid for the secure-path audience?",
            status=status,
            problem=problem,
        )
    return ControlError(f"{message}; see the backend's log (observastack logs backend)")
