"""What the application channel manages: the runtime config document, faults and feature flags.

The specs here are the single source of truth for validation (``sut.control.schema``) and for the
OpenAPI document (``sut.control.openapi``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sut.control.schema import (
    AnyObject,
    Bool,
    Choice,
    Field,
    FieldError,
    Int,
    Number,
    Obj,
    Raw,
    Text,
)

__all__ = [
    "CONFIG_SPEC",
    "FAULT_KINDS",
    "FLAG_CATALOG",
    "FLAG_NAME",
    "FLAG_SPEC",
    "Fault",
    "FaultLimits",
    "Flag",
    "KnownFlag",
    "Settings",
    "default_config",
    "fault_request_spec",
    "route_regex",
    "validate_flag",
]

CONFIG_SPEC = Obj(
    {
        "rate_limit": Obj(
            {
                "enabled": Field(Bool(), doc="limit /api/* requests (429 with Retry-After)"),
                "rps": Field(
                    Number(0, 10_000, lo_exclusive=True),
                    doc="requests per second over all workers together",
                ),
                "burst": Field(Int(1, 10_000), doc="requests allowed at once (bucket size)"),
            },
            doc="one token bucket shared by every worker",
        ),
        "request_timeout_ms": Field(
            Int(1, 60_000), doc="an /api/* request still running after this answers 504"
        ),
        "pool": Obj(
            {
                "size": Field(Int(1, 1024), doc="simulated downstream connections per worker"),
                "acquire_timeout_ms": Field(
                    Int(0, 60_000), doc="how long a request queues for a connection before 503"
                ),
            },
            doc="the simulated downstream connection pool (/api/io, /api/items)",
        ),
        "desired_workers": Field(
            Int(1, 16), doc="Gunicorn worker count the Control Agent converges to (TTIN/TTOU)"
        ),
        "fault_max_duration_s": Field(Int(1, 3600), doc="longest duration_s a fault may ask for"),
    },
    read_only=frozenset({"version", "updated_at", "updated_by"}),
)


def default_config(workers: int) -> dict[str, Any]:
    """The document a fresh data directory starts with."""
    return {
        "rate_limit": {"enabled": False, "rps": 100.0, "burst": 100},
        "request_timeout_ms": 30_000,
        "pool": {"size": 64, "acquire_timeout_ms": 2_000},
        "desired_workers": workers,
        "fault_max_duration_s": 600,
    }


@dataclass(frozen=True)
class Settings:
    """The config document, typed, as the request path uses it."""

    rate_limit_enabled: bool
    rate_limit_rps: float
    rate_limit_burst: int
    request_timeout_s: float
    pool_size: int
    pool_acquire_timeout_s: float
    desired_workers: int
    fault_max_duration_s: int

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Settings:
        return cls(
            rate_limit_enabled=bool(doc["rate_limit"]["enabled"]),
            rate_limit_rps=float(doc["rate_limit"]["rps"]),
            rate_limit_burst=int(doc["rate_limit"]["burst"]),
            request_timeout_s=int(doc["request_timeout_ms"]) / 1000,
            pool_size=int(doc["pool"]["size"]),
            pool_acquire_timeout_s=int(doc["pool"]["acquire_timeout_ms"]) / 1000,
            desired_workers=int(doc["desired_workers"]),
            fault_max_duration_s=int(doc["fault_max_duration_s"]),
        )


# -- faults ------------------------------------------------------------------------------------

ROUTE = Text(r"/[A-Za-z0-9_.~/*?\-]*", 200, "a path pattern such as /api/items* (* and ? globs)")
PROBABILITY = Number(0, 1)
FAULT_KINDS = ("latency", "error", "cpu", "memory", "pool_exhaustion")


@dataclass(frozen=True)
class FaultLimits:
    cpu_max_cores: int
    memory_max_mb: int
    max_active: int = 32


def fault_params_specs(limits: FaultLimits) -> dict[str, Obj]:
    route = Field(ROUTE, "/api/*", "requests whose path matches (fnmatch) are affected")
    probability = Field(PROBABILITY, 1.0, "share of matching requests affected (0..1)")
    return {
        "latency": Obj(
            {
                "fixed_ms": Field(Int(0, 60_000), doc="added delay"),
                "jitter_ms": Field(Int(0, 60_000), 0, "plus a uniform random 0..jitter_ms"),
                "probability": probability,
                "route": route,
            }
        ),
        "error": Obj(
            {
                "status": Field(Int(400, 599), 500, "HTTP status answered instead"),
                "probability": probability,
                "route": route,
                "first_n": Field(
                    Int(1, 1_000_000, nullable=True),
                    None,
                    "only the first N matching requests (over all workers); null: all",
                ),
            }
        ),
        "cpu": Obj(
            {
                "cores": Field(
                    Int(1, limits.cpu_max_cores), 1, "busy processes beside the workers"
                ),
            }
        ),
        "memory": Obj(
            {"mb": Field(Int(1, limits.memory_max_mb), doc="MiB held (and touched) resident")}
        ),
        "pool_exhaustion": Obj(
            {
                "connections": Field(
                    Int(1, 1024, nullable=True),
                    None,
                    "pool connections held in every worker; null: all of them",
                ),
            }
        ),
    }


def fault_request_spec(limits: FaultLimits) -> Obj:
    """The top level of ``POST /config/faults`` (params are checked per kind afterwards)."""
    return Obj(
        {
            "kind": Field(Choice(FAULT_KINDS), doc="what to inject"),
            "duration_s": Field(
                Number(0, 3600, lo_exclusive=True),
                doc="seconds until the fault clears itself (<= fault_max_duration_s)",
            ),
            "params": Field(AnyObject(), {}, "kind-specific parameters (see each kind)"),
        }
    )


@dataclass(frozen=True)
class Fault:
    """One injected fault as stored (absolute wall-clock times)."""

    id: str
    kind: str
    params: Mapping[str, Any]
    duration_s: float
    created_at: float
    expires_at: float
    created_by: str | None
    deleted_at: float | None = None
    matched: int = 0

    def state(self, now: float) -> str:
        if self.deleted_at is not None:
            return "deleted"
        return "active" if now < self.expires_at else "expired"

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "params": dict(self.params),
            "duration_s": self.duration_s,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "remaining_s": round(max(0.0, self.expires_at - now), 3),
            "state": self.state(now),
            "created_by": self.created_by,
            "matched": self.matched,
        }


def route_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch-style: ``*`` any run of characters (``/`` included), ``?`` one character."""
    out = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(out + r"\Z")


# -- flags -------------------------------------------------------------------------------------

FLAG_NAME = r"[a-z][a-z0-9_.\-]{0,63}"
VARIANT = Text(r"[A-Za-z0-9_.\-]+", 40, "a variant name of letters, digits, _ . -")


@dataclass(frozen=True)
class KnownFlag:
    """A flag the app acts on (any other name is stored and reported, and changes nothing)."""

    name: str
    effect: str
    variants: tuple[str, ...] | None = None  # None: boolean

    @property
    def default(self) -> bool | str:
        return self.variants[0] if self.variants else False

    def to_json(self) -> dict[str, Any]:
        kind = "variant" if self.variants else "boolean"
        out: dict[str, Any] = {"name": self.name, "type": kind, "default": self.default}
        if self.variants:
            out["variants"] = list(self.variants)
        return {**out, "effect": self.effect}


FLAG_CATALOG: dict[str, KnownFlag] = {
    flag.name: flag
    for flag in (
        KnownFlag(
            "slow_path",
            "/api/items* take the slow code path: +150 ms (header X-Observastack-Path: slow)",
        ),
        KnownFlag(
            "items_cache",
            "GET /api/items is cached per worker for 2 s (header X-Cache: HIT or MISS)",
        ),
        KnownFlag(
            "extra_downstream_call",
            "/api/items* make a second downstream call (pool + 25 ms; X-Downstream-Calls: 2)",
        ),
        KnownFlag("items_order", "order of GET /api/items", ("id", "newest", "price")),
    )
}

FLAG_SPEC = Obj(
    {
        "value": Field(
            Raw({"oneOf": [{"type": "boolean"}, VARIANT.schema()]}),
            doc="true/false (boolean flag), or the chosen variant name (variant flag)",
        ),
        "variants": Field(
            Raw(
                {
                    "type": "array",
                    "items": VARIANT.schema(),
                    "minItems": 1,
                    "maxItems": 20,
                    "uniqueItems": True,
                },
                nullable=True,
            ),
            None,
            "allowed variant names (variant flags; fixed for known flags)",
        ),
        "description": Field(Text(r"[^\x00-\x1f]*", 200, "a one-line text", 0), "", ""),
    },
    read_only=frozenset({"name", "type", "version", "updated_at", "updated_by", "known"}),
)


@dataclass(frozen=True)
class Flag:
    name: str
    value: bool | str
    variants: tuple[str, ...] | None
    description: str
    version: int
    updated_at: float
    updated_by: str | None

    @property
    def type(self) -> str:
        return "boolean" if isinstance(self.value, bool) else "variant"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "value": self.value,
            "variants": list(self.variants) if self.variants is not None else None,
            "description": self.description,
            "version": self.version,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "known": self.name in FLAG_CATALOG,
        }
        return out


def validate_flag(
    name: str, body: object
) -> tuple[tuple[bool | str, tuple[str, ...] | None, str] | None, list[FieldError]]:
    """Check ``PUT /config/flags/{name}``; return ((value, variants, description), errors)."""
    errors: list[FieldError] = []
    if not re.fullmatch(FLAG_NAME, name):
        errors.append(FieldError(("name",), f"must match {FLAG_NAME} (lower-case, <= 64 chars)"))
    accepted, errors_body = FLAG_SPEC.validate(body, use_defaults=True)
    errors += errors_body
    if errors_body:
        return None, errors
    value, raw_variants = accepted["value"], accepted["variants"]
    known = FLAG_CATALOG.get(name)
    variants: tuple[str, ...] | None = None
    if raw_variants is not None:
        if not isinstance(raw_variants, list) or not 1 <= len(raw_variants) <= 20:
            errors.append(FieldError(("variants",), "must be an array of 1..20 variant names"))
        else:
            for i, item in enumerate(raw_variants):
                problem = VARIANT.check(item)
                if problem:
                    errors.append(FieldError(("variants", str(i)), problem))
            if len(set(map(str, raw_variants))) != len(raw_variants):
                errors.append(FieldError(("variants",), "must not repeat a name"))
            variants = tuple(str(v) for v in raw_variants)
    if isinstance(value, bool):
        if raw_variants is not None:
            errors.append(FieldError(("variants",), "a boolean flag has no variants"))
        if known is not None and known.variants:
            errors.append(FieldError(("value",), f"{name} is a variant flag: {known.variants}"))
    elif isinstance(value, str):
        if known is not None and not known.variants:
            errors.append(FieldError(("value",), f"{name} is a boolean flag: true or false"))
        if known is not None and known.variants:
            if variants is not None and variants != known.variants:
                errors.append(
                    FieldError(("variants",), f"{name} has fixed variants {list(known.variants)}")
                )
            variants = known.variants
        if variants is None and not errors:
            errors.append(FieldError(("variants",), "required for a variant (string) value"))
        elif variants is not None and value not in variants:
            errors.append(FieldError(("value",), f"must be one of {list(variants)}"))
    else:
        errors.append(FieldError(("value",), "must be true, false or a variant name (string)"))
    if errors:
        return None, errors
    return (value, variants, str(accepted["description"])), []
