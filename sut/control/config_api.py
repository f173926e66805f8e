"""``/config/runtime`` (the config document) and ``/config/state/*`` (the items data).

| route | answer |
|---|---|
| ``GET /config/runtime`` | 200, the document with ``version``; ``ETag: "config-<version>"`` |
| ``PUT /config/runtime`` | replace every setting; ``If-Match`` required (428 without, 412 stale) |
| ``PATCH /config/runtime`` | JSON merge patch (RFC 7396) of some settings; ``If-Match`` as PUT |
| ``POST /config/state/reset?scope=`` | ``data``: empty the items; ``all``: also the config's |
| | defaults, no flags and no faults |
| ``POST /config/state/seed?items=N`` | replace the items with N generated ones |

Validation errors are 422 problem documents whose ``errors`` name every bad field; a rejected
request changes nothing (the check and the write are one transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from sut.control.errors import Invalid
from sut.control.http import Change, caller_of, change, if_match, read_json, reader
from sut.control.model import CONFIG_SPEC
from sut.control.schema import FieldError, merge_patch
from sut.control.store import ConfigRecord

__all__ = ["MAX_SEED_ITEMS", "install"]

MAX_SEED_ITEMS = 10_000


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    old, new = _flatten(before), _flatten(after)
    return {k: {"from": old.get(k), "to": new[k]} for k in new if old.get(k) != new[k]}


def _document(record: ConfigRecord, status: int = 200) -> HTTPResponse:
    return json_response(record.to_json(), status=status, headers={"ETag": record.etag})


def _changed(before: ConfigRecord, after: ConfigRecord) -> Change:
    return Change(
        _document(after),
        {
            "version_before": before.version,
            "version_after": after.version,
            "changes": diff(before.doc, after.doc),
        },
    )


def _int_arg(request: Request, name: str, default: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= hi:
        raise Invalid([FieldError((name,), f"must be an integer in 0..{hi}, got {raw[:40]!r}")])
    return value


def install(app: Sanic[Any, Any]) -> None:
    @app.get("/config/runtime", error_format="json")
    @reader
    async def get_runtime(request: Request) -> HTTPResponse:
        return _document(request.app.ctx.control.store.config())

    @app.put("/config/runtime", error_format="json")
    @change("config.replace")
    async def put_runtime(request: Request) -> Change:
        expected = if_match(request, required=True)
        assert expected is not None
        body = read_json(request)
        before, after = request.app.ctx.control.store.write_config(
            lambda current: expected.matches(current.etag),
            lambda current: CONFIG_SPEC.validate(body),
            caller_of(request),
        )
        return _changed(before, after)

    @app.patch("/config/runtime", error_format="json")
    @change("config.patch")
    async def patch_runtime(request: Request) -> Change:
        expected = if_match(request, required=True)
        assert expected is not None
        patch = read_json(request)

        def update(current: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
            merged, errors = merge_patch(current, patch)
            accepted, more = CONFIG_SPEC.validate(merged)
            return accepted, errors + more

        before, after = request.app.ctx.control.store.write_config(
            lambda current: expected.matches(current.etag), update, caller_of(request)
        )
        return _changed(before, after)

    @app.post("/config/state/reset", error_format="json")
    @change("state.reset")
    async def reset(request: Request) -> Change:
        scope = request.args.get("scope", "data")
        if scope not in ("data", "all"):
            raise Invalid([FieldError(("scope",), f"must be data or all, got {scope[:40]!r}")])
        control = request.app.ctx.control
        result: dict[str, Any] = {"scope": scope}
        if scope == "all":
            defaults = dict(control.store.defaults)
            before, after = control.store.write_config(
                lambda current: True, lambda current: (defaults, []), caller_of(request)
            )
            result["config_version"] = after.version
            result["config_changes"] = diff(before.doc, after.doc)
            result["deleted_flags"] = control.store.delete_all_flags()
            result["cleared_faults"] = [f.id for f in control.store.clear_faults()]
        request.app.ctx.store.reset()
        result["items"] = 0
        result["data_generation"] = control.store.bump_data_generation()
        return Change(json_response(result), dict(result))

    @app.post("/config/state/seed", error_format="json")
    @change("state.seed")
    async def seed(request: Request) -> Change:
        count = _int_arg(request, "items", 100, MAX_SEED_ITEMS)
        request.app.ctx.store.replace_with_generated(count)
        generation = request.app.ctx.control.store.bump_data_generation()
        result = {"items": count, "data_generation": generation}
        return Change(json_response(result), dict(result))
