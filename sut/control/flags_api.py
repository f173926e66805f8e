"""``/config/flags``: feature flags, boolean or variant.

| route | answer |
|---|---|
| ``GET /config/flags`` | 200 ``{"version", "flags": [...], "known": [catalogue]}`` |
| ``GET /config/flags/{name}`` | 200 the flag (``ETag: "flag-<version>"``); 404 when not set |
| ``PUT /config/flags/{name}`` | 201 created / 200 updated; ``If-Match`` optional (412 stale) |
| ``DELETE /config/flags/{name}`` | 204; 404 when not set; ``If-Match`` optional |

A flag that is not set has its catalogue default (``known``); any other name may be set too (labs
can read it through ``/metrics``), but only the catalogue's flags change what ``/api/*`` does.
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, empty
from sanic.response import json as json_response

from sut.control.errors import Invalid, NotFound
from sut.control.http import Change, IfMatch, caller_of, change, if_match, read_json, reader
from sut.control.model import FLAG_CATALOG, Flag, validate_flag

__all__ = ["install"]


def _etag(flag: Flag) -> str:
    return f'"flag-{flag.version}"'


def _matcher(expected: IfMatch | None) -> Any:
    def matches(current: Flag | None) -> bool:
        if expected is None:
            return True
        return expected.matches(_etag(current) if current else None)

    return matches


def _not_set(name: str) -> NotFound:
    known = FLAG_CATALOG.get(name)
    if known:
        return NotFound(f"flag {name!r} is not set; it has its default {known.default!r}")
    return NotFound(f"flag {name[:64]!r} is not set; see GET /config/flags for the known ones")


def install(app: Sanic[Any, Any]) -> None:
    @app.get("/config/flags", error_format="json")
    @reader
    async def list_flags(request: Request) -> HTTPResponse:
        snapshot = request.app.ctx.control.state.snapshot
        return json_response(
            {
                "version": snapshot.versions.flags,
                "flags": [flag.to_json() for flag in snapshot.flags.values()],
                "known": [known.to_json() for known in FLAG_CATALOG.values()],
            }
        )

    @app.get("/config/flags/<name:str>", error_format="json")
    @reader
    async def get_flag(request: Request, name: str) -> HTTPResponse:
        flag = request.app.ctx.control.state.snapshot.flags.get(name)
        if flag is None:
            raise _not_set(name)
        return json_response(flag.to_json(), headers={"ETag": _etag(flag)})

    @app.put("/config/flags/<name:str>", error_format="json")
    @change("flag.set")
    async def put_flag(request: Request, name: str) -> Change:
        expected = if_match(request, required=False)
        accepted, errors = validate_flag(name, read_json(request))
        if accepted is None:
            raise Invalid(errors, what="flag")
        value, variants, description = accepted
        before, after = request.app.ctx.control.store.put_flag(
            name, value, variants, description, caller_of(request), _matcher(expected)
        )
        response = json_response(
            after.to_json(), status=200 if before else 201, headers={"ETag": _etag(after)}
        )
        return Change(
            response,
            {
                "flag": name,
                "from": before.value if before else None,
                "to": after.value,
                "flag_version": after.version,
            },
        )

    @app.delete("/config/flags/<name:str>", error_format="json")
    @change("flag.delete")
    async def delete_flag(request: Request, name: str) -> Change:
        expected = if_match(request, required=False)
        removed = request.app.ctx.control.store.delete_flag(name, _matcher(expected))
        if removed is None:
            raise _not_set(name)
        return Change(empty(), {"flag": name, "from": removed.value})
