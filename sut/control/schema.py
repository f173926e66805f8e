"""Validation of request bodies against small declarative specs, and their JSON Schema.

One spec drives both the checks (``Obj.validate``: every bad field is reported, with a JSON
pointer and a reason) and the OpenAPI schema (``Obj.schema``), so the document cannot drift from
what the server accepts. Rules are strict on purpose: booleans are not numbers, ``5.0`` is not an
integer, NaN and infinities are refused, unknown fields are errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "REQUIRED",
    "AnyObject",
    "Bool",
    "Choice",
    "Field",
    "FieldError",
    "Int",
    "Number",
    "Obj",
    "Raw",
    "Rule",
    "Text",
    "merge_patch",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class FieldError:
    """One rejected field: where (path of keys) and why."""

    path: tuple[str, ...]
    detail: str

    @property
    def field(self) -> str:
        return ".".join(self.path) if self.path else "(body)"

    @property
    def pointer(self) -> str:
        escaped = (part.replace("~", "~0").replace("/", "~1") for part in self.path)
        return "#/" + "/".join(escaped)

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "pointer": self.pointer, "detail": self.detail}


def _show(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    return {"list": "an array", "dict": "an object"}.get(type(value).__name__, type(value).__name__)


class Rule(Protocol):
    @property
    def nullable(self) -> bool: ...

    def check(self, value: object) -> str | None:
        """None when ``value`` is acceptable, else the reason it is not."""
        ...

    def schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Int:
    lo: int
    hi: int
    nullable: bool = False

    def check(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer in {self.lo}..{self.hi}, got {_show(value)}"
        if not self.lo <= value <= self.hi:
            return f"must be an integer in {self.lo}..{self.hi}, got {value}"
        return None

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.lo, "maximum": self.hi}


@dataclass(frozen=True)
class Number:
    lo: float
    hi: float
    lo_exclusive: bool = False
    nullable: bool = False

    def check(self, value: object) -> str | None:
        low = f"> {self.lo:g}" if self.lo_exclusive else f">= {self.lo:g}"
        wanted = f"must be a number {low} and <= {self.hi:g}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{wanted}, got {_show(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{wanted}, got {value!r}"
        too_low = value <= self.lo if self.lo_exclusive else value < self.lo
        if too_low or value > self.hi:
            return f"{wanted}, got {value!r}"
        return None

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number", "minimum": self.lo, "maximum": self.hi}
        if self.lo_exclusive:
            out["exclusiveMinimum"] = True
        return out


@dataclass(frozen=True)
class Bool:
    nullable: bool = False

    def check(self, value: object) -> str | None:
        return None if isinstance(value, bool) else f"must be true or false, got {_show(value)}"

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Text:
    pattern: str
    max_len: int
    hint: str
    min_len: int = 1
    nullable: bool = False

    def check(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be a string ({self.hint}), got {_show(value)}"
        if not self.min_len <= len(value) <= self.max_len:
            return f"must have {self.min_len}..{self.max_len} characters, got {len(value)}"
        if not re.fullmatch(self.pattern, value):
            return f"must be {self.hint}, got {value[:60]!r}"
        return None

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": self.min_len,
            "maxLength": self.max_len,
            "pattern": f"^(?:{self.pattern})$",
        }


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]
    nullable: bool = False

    def check(self, value: object) -> str | None:
        if isinstance(value, str) and value in self.values:
            return None
        return f"must be one of {', '.join(self.values)}; got {_show(value)}"

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}


@dataclass(frozen=True)
class AnyObject:
    nullable: bool = False

    def check(self, value: object) -> str | None:
        return None if isinstance(value, dict) else f"must be a JSON object, got {_show(value)}"

    def schema(self) -> dict[str, Any]:
        return {"type": "object"}


@dataclass(frozen=True)
class Raw:
    """Accepts anything here (a later check decides); documents ``json_schema``."""

    json_schema: Mapping[str, Any]
    nullable: bool = False

    def check(self, value: object) -> str | None:
        return None

    def schema(self) -> dict[str, Any]:
        return dict(self.json_schema)


@dataclass(frozen=True)
class Field:
    """A leaf: its rule, its default (``REQUIRED``: none) and a description for the schema."""

    rule: Rule
    default: Any = REQUIRED
    doc: str = ""

    def schema(self) -> dict[str, Any]:
        out = self.rule.schema()
        if self.rule.nullable:
            out["nullable"] = True
        if self.doc:
            out["description"] = self.doc
        if self.default is not REQUIRED:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class Obj:
    """A JSON object with exactly these members (nested ``Obj`` or ``Field``)."""

    fields: Mapping[str, Field | Obj]
    doc: str = ""
    read_only: frozenset[str] = field(default_factory=frozenset)

    def validate(
        self, value: object, path: tuple[str, ...] = (), *, use_defaults: bool = False
    ) -> tuple[dict[str, Any], list[FieldError]]:
        """Check ``value``; return (the accepted object, every error). Read-only members are
        accepted and dropped; with ``use_defaults`` missing members take their defaults."""
        if not isinstance(value, dict):
            return {}, [FieldError(path, f"must be a JSON object, got {_show(value)}")]
        errors: list[FieldError] = []
        allowed = ", ".join(self.fields)
        for key in value:
            if key not in self.fields and key not in self.read_only:
                errors.append(FieldError((*path, str(key)), f"unknown field; allowed: {allowed}"))
        out: dict[str, Any] = {}
        for name, member in self.fields.items():
            where = (*path, name)
            if name not in value:
                if isinstance(member, Field) and use_defaults and member.default is not REQUIRED:
                    out[name] = member.default
                elif isinstance(member, Obj) and use_defaults:
                    out[name], nested = member.validate({}, where, use_defaults=True)
                    errors += nested
                else:
                    errors.append(FieldError(where, "required"))
                continue
            raw = value[name]
            if isinstance(member, Obj):
                out[name], nested = member.validate(raw, where, use_defaults=use_defaults)
                errors += nested
            elif raw is None and member.rule.nullable:
                out[name] = None
            else:
                problem = member.rule.check(raw)
                if problem is None:
                    out[name] = raw
                else:
                    errors.append(FieldError(where, problem))
        return out, errors

    def schema(self, *, all_required: bool = True) -> dict[str, Any]:
        props: dict[str, Any] = {}
        required = []
        for name, member in self.fields.items():
            if isinstance(member, Obj):
                props[name] = member.schema(all_required=all_required)
                if all_required:
                    required.append(name)
            else:
                props[name] = member.schema()
                if all_required or member.default is REQUIRED:
                    required.append(name)
        out: dict[str, Any] = {"type": "object", "additionalProperties": False}
        out["properties"] = props
        if required:
            out["required"] = required
        if self.doc:
            out["description"] = self.doc
        return out

    def patch_schema(self) -> dict[str, Any]:
        """Schema of a JSON merge patch of this object: every member optional, never null."""
        props: dict[str, Any] = {}
        for name, member in self.fields.items():
            props[name] = member.patch_schema() if isinstance(member, Obj) else member.schema()
        return {"type": "object", "additionalProperties": False, "properties": props}


def merge_patch(
    target: Mapping[str, Any], patch: object, path: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[FieldError]]:
    """RFC 7396 merge of ``patch`` into a copy of ``target``; ``null`` (removal) is an error,
    because every setting always has a value."""
    if not isinstance(patch, dict):
        return dict(target), [FieldError(path, f"must be a JSON object, got {_show(patch)}")]
    merged = dict(target)
    errors: list[FieldError] = []
    for key, value in patch.items():
        where = (*path, str(key))
        if value is None:
            errors.append(FieldError(where, "must not be null: send the value you want instead"))
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key], nested = merge_patch(merged[key], value, where)
            errors += nested
        else:
            merged[key] = value
    return merged, errors
