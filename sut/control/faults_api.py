"""``/config/faults``: inject, list, inspect and delete faults; all-clear.

| route | answer |
|---|---|
| ``POST /config/faults`` | 201 the fault (``Location``); 422 bad fields; 409 over a total |
| ``GET /config/faults`` | 200 the active faults and the limits |
| ``GET /config/faults/{id}`` | 200 the fault, also once expired or deleted (``state``); 404 |
| ``DELETE /config/faults/{id}`` | 204; 404 when no such fault is active |
| ``DELETE /config/faults`` | 200 all-clear: ``{"cleared": [ids]}`` |

A fault's ``duration_s`` is mandatory and at most the config's ``fault_max_duration_s``; its
``expires_at`` is absolute, so it ends on time whatever happens to the workers (HUP, crash), and
it does not survive a backend restart at all (see ``sut.control.store``).
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, empty
from sanic.response import json as json_response

from sut.control.errors import Invalid, NotFound
from sut.control.http import Change, caller_of, change, read_json, reader
from sut.control.model import FaultLimits, fault_params_specs, fault_request_spec
from sut.control.schema import FieldError
from sut.metrics import instruments

__all__ = ["install"]


def _limits_json(limits: FaultLimits, max_duration_s: int) -> dict[str, Any]:
    return {
        "max_duration_s": max_duration_s,
        "max_active": limits.max_active,
        "cpu_max_cores": limits.cpu_max_cores,
        "memory_max_mb": limits.memory_max_mb,
    }


def validate_fault(
    body: object, limits: FaultLimits, max_duration_s: int
) -> tuple[str, dict[str, Any], float]:
    accepted, errors = fault_request_spec(limits).validate(body, use_defaults=True)
    duration = accepted.get("duration_s")
    if duration is not None and duration > max_duration_s:
        errors.append(
            FieldError(
                ("duration_s",),
                f"must be <= fault_max_duration_s ({max_duration_s} s), got {duration!r}",
            )
        )
    params: dict[str, Any] = {}
    kind = accepted.get("kind")
    if kind is not None and "params" in accepted:
        params, more = fault_params_specs(limits)[kind].validate(
            accepted["params"], ("params",), use_defaults=True
        )
        errors += more
    if errors:
        raise Invalid(errors, what="fault")
    return str(kind), params, float(accepted["duration_s"])


def install(app: Sanic[Any, Any]) -> None:
    @app.post("/config/faults", error_format="json")
    @change("fault.inject")
    async def inject(request: Request) -> Change:
        control = request.app.ctx.control
        body = read_json(request)
        settings = control.state.snapshot.settings
        kind, params, duration = validate_fault(body, control.limits, settings.fault_max_duration_s)
        fault = control.store.add_fault(kind, params, duration, caller_of(request), control.limits)
        instruments().faults_created.labels(kind=kind).inc()
        response = json_response(
            fault.to_json(control.clock()),
            status=201,
            headers={"Location": f"/config/faults/{fault.id}"},
        )
        return Change(
            response,
            {
                "fault": fault.id,
                "kind": kind,
                "params": params,
                "duration_s": duration,
                "expires_at": fault.expires_at,
            },
        )

    @app.get("/config/faults", error_format="json")
    @reader
    async def list_faults(request: Request) -> HTTPResponse:
        control = request.app.ctx.control
        now = control.clock()
        snapshot = control.state.snapshot
        return json_response(
            {
                "version": snapshot.versions.faults,
                "faults": [f.to_json(now) for f in control.store.active_faults()],
                "limits": _limits_json(control.limits, snapshot.settings.fault_max_duration_s),
            }
        )

    @app.delete("/config/faults", error_format="json")
    @change("fault.clear")
    async def clear(request: Request) -> Change:
        cleared = [f.id for f in request.app.ctx.control.store.clear_faults()]
        return Change(json_response({"cleared": cleared}), {"cleared": cleared})

    @app.get("/config/faults/<fault_id:str>", error_format="json")
    @reader
    async def inspect(request: Request, fault_id: str) -> HTTPResponse:
        control = request.app.ctx.control
        fault = control.store.fault(fault_id)
        if fault is None:
            raise NotFound(f"no fault {fault_id[:40]!r} (ids look like f-0123456789ab)")
        return json_response(fault.to_json(control.clock()))

    @app.delete("/config/faults/<fault_id:str>", error_format="json")
    @change("fault.delete")
    async def delete(request: Request, fault_id: str) -> Change:
        control = request.app.ctx.control
        fault = control.store.delete_fault(fault_id)
        if fault is None:
            known = control.store.fault(fault_id)
            state = known.state(control.clock()) if known else None
            raise NotFound(
                f"fault {fault_id[:40]!r} is {state}; nothing to delete"
                if state
                else f"no fault {fault_id[:40]!r}; list them with GET /config/faults"
            )
        return Change(empty(), {"fault": fault.id, "kind": fault.kind})
