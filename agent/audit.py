"""Structured logging and the signal history.

Every log line the agent writes is one JSON object (``JsonFormatter``). Request lines come from
the ``agent.audit`` logger with the request's fields in the record's ``audit`` attribute (caller
identity from the token, method, path, signal, target pid, status, result), so a log pipeline and
a test can read the same fields. ``SignalHistory`` keeps the last N signal requests for
``/agent/status``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "AUDIT_LOGGER",
    "JsonFormatter",
    "SignalHistory",
    "SignalRecord",
    "configure_logging",
    "utc_now",
]

AUDIT_LOGGER = "agent.audit"
_HANDLER_NAME = "observastack-agent-json"
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "audit"}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            line.update(audit)
        line.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(level: str) -> None:
    """Send every logger (ours and Sanic's) to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # One line per JWKS fetch is enough (the identity module logs it); httpx's own line is noise.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


@dataclass(frozen=True)
class SignalRecord:
    """One signal request as the status endpoint reports it."""

    at: str
    caller: str | None
    requested: str
    signal: str | None
    target_pid: int | None
    target_create_time: float | None
    result: str  # delivered | accepted | rejected | refused
    status: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SignalHistory:
    """The last ``size`` signal requests, oldest first; safe to use from several threads."""

    def __init__(self, size: int) -> None:
        self._records: deque[SignalRecord] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, record: SignalRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[SignalRecord]:
        with self._lock:
            return list(self._records)
