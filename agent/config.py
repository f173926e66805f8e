"""The agent's settings, read once from the environment and validated.

``AgentConfig.from_env(os.environ)`` is called by ``python -m agent`` at start; a bad value raises
``ConfigError`` naming the variable, what it held and what is accepted. Nothing is read at import.

| variable | default | meaning |
|---|---|---|
| ``OBSERVASTACK_AGENT_HOST`` | ``0.0.0.0`` | listen address |
| ``OBSERVASTACK_AGENT_PORT`` | ``9000`` | listen port |
| ``OBSERVASTACK_AGENT_WATCH_INTERVAL_S`` | ``0.25`` | master check period (≤ 0.5) |
| ``OBSERVASTACK_AGENT_DISCOVERY_TIMEOUT_S`` | ``30`` | how long to wait for a master at start |
| ``OBSERVASTACK_AGENT_MASTER_TITLE`` | ``^gunicorn: master \\[`` | regex for the master's title |
| ``OBSERVASTACK_AGENT_HISTORY_SIZE`` | ``50`` | signals remembered for ``/agent/status`` |
| ``OBSERVASTACK_AGENT_LOG_LEVEL`` | ``INFO`` | log level of the JSON log lines |
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from agent.errors import ConfigError

__all__ = ["DEFAULT_MASTER_TITLE", "HEALTH_PATH", "MAX_WATCH_INTERVAL_S", "AgentConfig"]

DEFAULT_MASTER_TITLE = r"^gunicorn: master \["
HEALTH_PATH = "/agent/healthz"
MAX_WATCH_INTERVAL_S = 0.5
_PREFIX = "OBSERVASTACK_AGENT_"

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Validated agent settings (see the module docstring for the environment variables)."""

    host: str = "0.0.0.0"
    port: int = 9000
    watch_interval_s: float = 0.25
    discovery_timeout_s: float = 30.0
    master_title: str = DEFAULT_MASTER_TITLE
    history_size: int = 50
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentConfig:
        """Build the settings from ``env``; raise ``ConfigError`` on the first bad value."""
        defaults = cls()
        return cls(
            host=_read(env, "HOST", str, defaults.host, _non_empty),
            port=_read(env, "PORT", int, defaults.port, _in_range(1, 65535)),
            watch_interval_s=_read(
                env,
                "WATCH_INTERVAL_S",
                float,
                defaults.watch_interval_s,
                _in_range(0.01, MAX_WATCH_INTERVAL_S),
            ),
            discovery_timeout_s=_read(
                env, "DISCOVERY_TIMEOUT_S", float, defaults.discovery_timeout_s, _in_range(0, 3600)
            ),
            master_title=_read(env, "MASTER_TITLE", str, defaults.master_title, _regex),
            history_size=_read(
                env, "HISTORY_SIZE", int, defaults.history_size, _in_range(1, 10000)
            ),
            log_level=_read(env, "LOG_LEVEL", str.upper, defaults.log_level, _log_level),
        )


def _read(
    env: Mapping[str, str],
    suffix: str,
    parse: Callable[[str], T],
    default: T,
    check: Callable[[T], str | None],
) -> T:
    name = _PREFIX + suffix
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a valid {parse.__name__}; unset it to use {default!r}"
        ) from None
    problem = check(value)
    if problem is not None:
        raise ConfigError(f"{name}={raw!r}: {problem}; unset it to use {default!r}")
    return value


def _non_empty(value: str) -> str | None:
    return None if value else "must not be empty"


def _in_range(low: float, high: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    return None


def _log_level(value: str) -> str | None:
    known = logging.getLevelNamesMapping()
    return None if value in known else f"must be one of {', '.join(sorted(known))}"
