"""The OpenAPI 3.0 document of ``/config/*``, served at ``GET /config/openapi.json``.

Request schemas come from the same specs the server validates with (``sut.control.model``), so
the document and the server agree by construction; a unit test and the stack's schemathesis run
check the responses against it.
"""

from __future__ import annotations

from typing import Any

from sut.control.http import MAX_BODY_BYTES
from sut.control.model import (
    CONFIG_SPEC,
    FAULT_KINDS,
    FLAG_NAME,
    FLAG_SPEC,
    FaultLimits,
    fault_params_specs,
)

__all__ = ["openapi_document"]

JSON = "application/json"
PROBLEM = "application/problem+json"
_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _ok(schema: str, description: str, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref(schema)}}}
    if headers:
        out["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return out


_PROBLEMS = {
    "400": "the body is not JSON",
    "401": "no valid token (answered by the secure-gateway)",
    "403": "not reached through the secure-path, or the subject is not allowed",
    "404": "no such object",
    "409": "the change would exceed a limit",
    "412": "If-Match does not match the current version; nothing was changed",
    "413": f"the body is over {MAX_BODY_BYTES} bytes",
    "415": "the body is not JSON by its Content-Type",
    "422": "invalid fields (``errors`` names each one); nothing was changed",
    "428": "If-Match is required",
}


def _problems(*codes: str) -> dict[str, Any]:
    return {
        code: {"description": _PROBLEMS[code], "content": {PROBLEM: {"schema": _ref("Problem")}}}
        for code in ("401", "403", *codes)
    }


def _body(schema: dict[str, Any], *media: str) -> dict[str, Any]:
    return {"required": True, "content": {m: {"schema": schema} for m in media or (JSON,)}}


_IF_MATCH_REQUIRED = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "description": 'the ETag of the last GET (e.g. "config-3"), or * for any version',
    "schema": {"type": "string"},
}
_IF_MATCH_OPTIONAL = {**_IF_MATCH_REQUIRED, "required": False}
_FAULT_ID = {
    "name": "fault_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^f-[0-9a-f]{12}$"},
}
_FLAG_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{FLAG_NAME}$"},
}


def _schemas(limits: FaultLimits) -> dict[str, Any]:
    config = CONFIG_SPEC.schema()
    document = {
        **config,
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "updated_at": {"type": "number"},
            "updated_by": {"type": "string", "nullable": True},
            **config["properties"],
        },
        "required": ["version", "updated_at", "updated_by", *config["required"]],
    }
    fault_requests = []
    for kind, spec in fault_params_specs(limits).items():
        params = spec.schema(all_required=False)
        needs_params = "required" in params
        fault_requests.append(
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["kind", "duration_s", *(["params"] if needs_params else [])],
                "properties": {
                    "kind": {"type": "string", "enum": [kind]},
                    "duration_s": {
                        "type": "number",
                        "minimum": 0,
                        "exclusiveMinimum": True,
                        "maximum": 3600,
                        "description": "seconds; at most the config's fault_max_duration_s",
                    },
                    "params": params,
                },
            }
        )
    flag_put = FLAG_SPEC.schema(all_required=False)
    return {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "pointer", "detail"],
                        "properties": {
                            "field": {"type": "string"},
                            "pointer": {"type": "string"},
                            "detail": {"type": "string"},
                        },
                    },
                },
            },
        },
        "ConfigDocument": document,
        "ConfigReplace": config,
        "ConfigPatch": CONFIG_SPEC.patch_schema(),
        "FaultRequest": {"oneOf": fault_requests},
        "Fault": {
            "type": "object",
            "required": [
                "id",
                "kind",
                "params",
                "duration_s",
                "created_at",
                "expires_at",
                "remaining_s",
                "state",
                "created_by",
                "matched",
            ],
            "properties": {
                "id": {"type": "string", "pattern": "^f-[0-9a-f]{12}$"},
                "kind": {"type": "string", "enum": list(FAULT_KINDS)},
                "params": {"type": "object"},
                "duration_s": {"type": "number"},
                "created_at": {"type": "number"},
                "expires_at": {"type": "number"},
                "remaining_s": {"type": "number", "minimum": 0},
                "state": {"type": "string", "enum": ["active", "expired", "deleted"]},
                "created_by": {"type": "string", "nullable": True},
                "matched": {"type": "integer", "minimum": 0},
            },
        },
        "FaultList": {
            "type": "object",
            "required": ["version", "faults", "limits"],
            "properties": {
                "version": {"type": "integer"},
                "faults": {"type": "array", "items": _ref("Fault")},
                "limits": {"type": "object"},
            },
        },
        "Cleared": {
            "type": "object",
            "required": ["cleared"],
            "properties": {"cleared": {"type": "array", "items": {"type": "string"}}},
        },
        "FlagPut": flag_put,
        "Flag": {
            "type": "object",
            "required": [
                "name",
                "type",
                "value",
                "variants",
                "description",
                "version",
                "updated_at",
                "updated_by",
                "known",
            ],
            "properties": {
                "name": {"type": "string"},
                "type": {"type": "string", "enum": ["boolean", "variant"]},
                "value": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
                "variants": {"type": "array", "items": {"type": "string"}, "nullable": True},
                "description": {"type": "string"},
                "version": {"type": "integer", "minimum": 1},
                "updated_at": {"type": "number"},
                "updated_by": {"type": "string", "nullable": True},
                "known": {"type": "boolean"},
            },
        },
        "FlagList": {
            "type": "object",
            "required": ["version", "flags", "known"],
            "properties": {
                "version": {"type": "integer"},
                "flags": {"type": "array", "items": _ref("Flag")},
                "known": {"type": "array", "items": {"type": "object"}},
            },
        },
        "StateResult": {
            "type": "object",
            "required": ["items", "data_generation"],
            "properties": {
                "items": {"type": "integer", "minimum": 0},
                "data_generation": {"type": "integer"},
                "scope": {"type": "string", "enum": ["data", "all"]},
            },
        },
    }


def openapi_document(limits: FaultLimits) -> dict[str, Any]:
    """The whole document (fault limits are part of the request schemas)."""
    config_write = {
        "parameters": [_IF_MATCH_REQUIRED],
        "responses": {
            "200": _ok("ConfigDocument", "the new document", ETag="its new version"),
            **_problems("400", "412", "413", "415", "422", "428"),
        },
    }
    paths: dict[str, Any] = {
        "/config/runtime": {
            "get": {
                "operationId": "getRuntimeConfig",
                "summary": "The runtime config document",
                "responses": {
                    "200": _ok("ConfigDocument", "the document", ETag="its version"),
                    **_problems(),
                },
            },
            "put": {
                "operationId": "replaceRuntimeConfig",
                "summary": "Replace every setting (compare-and-set on If-Match)",
                "requestBody": _body(_ref("ConfigReplace")),
                **config_write,
            },
            "patch": {
                "operationId": "patchRuntimeConfig",
                "summary": "Change some settings: a JSON merge patch (RFC 7396)",
                "requestBody": _body(_ref("ConfigPatch"), JSON, "application/merge-patch+json"),
                **config_write,
            },
        },
        "/config/faults": {
            "get": {
                "operationId": "listFaults",
                "responses": {"200": _ok("FaultList", "active faults"), **_problems()},
            },
            "post": {
                "operationId": "injectFault",
                "requestBody": _body(_ref("FaultRequest")),
                "responses": {
                    "201": {
                        **_ok("Fault", "the fault, active now"),
                        "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
                    },
                    **_problems("400", "409", "413", "415", "422"),
                },
            },
            "delete": {
                "operationId": "clearFaults",
                "summary": "All-clear: delete every active fault",
                "responses": {"200": _ok("Cleared", "the ids deleted"), **_problems()},
            },
        },
        "/config/faults/{fault_id}": {
            "parameters": [_FAULT_ID],
            "get": {
                "operationId": "getFault",
                "responses": {"200": _ok("Fault", "the fault"), **_problems("404")},
            },
            "delete": {
                "operationId": "deleteFault",
                "responses": {"204": {"description": "deleted"}, **_problems("404")},
            },
        },
        "/config/flags": {
            "get": {
                "operationId": "listFlags",
                "responses": {"200": _ok("FlagList", "flags set; the catalogue"), **_problems()},
            },
        },
        "/config/flags/{name}": {
            "parameters": [_FLAG_NAME],
            "get": {
                "operationId": "getFlag",
                "responses": {
                    "200": _ok("Flag", "the flag", ETag="its version"),
                    **_problems("404"),
                },
            },
            "put": {
                "operationId": "setFlag",
                "parameters": [_IF_MATCH_OPTIONAL],
                "requestBody": _body(_ref("FlagPut")),
                "responses": {
                    "200": _ok("Flag", "updated", ETag="its new version"),
                    "201": _ok("Flag", "created", ETag="its version"),
                    **_problems("400", "412", "413", "415", "422"),
                },
            },
            "delete": {
                "operationId": "deleteFlag",
                "parameters": [_IF_MATCH_OPTIONAL],
                "responses": {"204": {"description": "deleted"}, **_problems("404", "412")},
            },
        },
        "/config/state/reset": {
            "post": {
                "operationId": "resetState",
                "parameters": [
                    {
                        "name": "scope",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["data", "all"], "default": "data"},
                    }
                ],
                "responses": {"200": _ok("StateResult", "reset"), **_problems("422")},
            },
        },
        "/config/state/seed": {
            "post": {
                "operationId": "seedState",
                "parameters": [
                    {
                        "name": "items",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10_000},
                    }
                ],
                "responses": {"200": _ok("StateResult", "seeded"), **_problems("422")},
            },
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ObservaStack SUT application channel",
            "version": "1",
            "description": (
                "Runtime config, failure injection, feature flags and state of the SUT. "
                "Served through the secure-path only (bearer token required)."
            ),
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": _schemas(limits),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
