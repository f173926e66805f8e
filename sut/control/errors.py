"""Errors of the application channel; each one is answered as an RFC 9457 problem document.

ControlFailure              status, title, detail (+ ``errors`` for 422)
 ├── Malformed              400 the body is not JSON
 ├── Forbidden              403 not reached through the secure-path
 ├── NotFound               404 no such fault or flag
 ├── Conflict               409 the change would exceed a limit (active faults, cores, MB)
 ├── PreconditionFailed     412 If-Match does not match the current version
 ├── TooLarge               413 the body is over the limit
 ├── UnsupportedMediaType   415 the body is not JSON by its Content-Type
 ├── Invalid                422 fields are wrong (``errors`` names each one)
 └── PreconditionRequired   428 If-Match is required and missing
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sut.control.schema import FieldError

__all__ = [
    "Conflict",
    "ControlFailure",
    "Forbidden",
    "Invalid",
    "Malformed",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "TooLarge",
    "UnsupportedMediaType",
]

PROBLEM_BASE = "urn:observastack:sut:"


class ControlFailure(Exception):
    status = 500
    title = "Internal error"
    kind = "internal"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class Malformed(ControlFailure):
    status, title, kind = 400, "Malformed request", "malformed"


class Forbidden(ControlFailure):
    status, title, kind = 403, "Forbidden", "forbidden"


class NotFound(ControlFailure):
    status, title, kind = 404, "Not found", "not-found"


class Conflict(ControlFailure):
    status, title, kind = 409, "Conflict", "conflict"


class PreconditionFailed(ControlFailure):
    status, title, kind = 412, "Precondition failed", "stale-version"


class TooLarge(ControlFailure):
    status, title, kind = 413, "Body too large", "too-large"


class UnsupportedMediaType(ControlFailure):
    status, title, kind = 415, "Unsupported media type", "unsupported-media-type"


class Invalid(ControlFailure):
    status, title, kind = 422, "Invalid request", "validation"

    def __init__(self, errors: Sequence[FieldError], *, what: str = "request") -> None:
        self.errors = list(errors)
        listed = "; ".join(f"{e.field}: {e.detail}" for e in self.errors)
        count = len(self.errors)
        noun = "field is" if count == 1 else "fields are"
        super().__init__(f"{count} {noun} invalid, nothing was changed: {listed}")
        self.title = f"Invalid {what}"

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": [e.to_json() for e in self.errors]}


class PreconditionRequired(ControlFailure):
    status, title, kind = 428, "Precondition required", "if-match-required"
