"""The SUT's settings, read once from the environment and validated at start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConfigError", "SutConfig"]


class ConfigError(ValueError):
    """The environment holds an invalid setting; the message names it and says what is allowed."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer ({lo}..{hi})") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range ({lo}..{hi})")
    return value


@dataclass(frozen=True)
class SutConfig:
    """Settings of the backend service."""

    bind: str
    workers: int
    graceful_timeout_s: int
    data_dir: Path
    metrics_dir: Path | None
    access_log: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SutConfig:
        env = os.environ if env is None else env
        metrics = env.get("PROMETHEUS_MULTIPROC_DIR")
        return cls(
            bind=env.get("OBSERVASTACK_BIND", "0.0.0.0:8000"),
            workers=_int(env, "OBSERVASTACK_WORKERS", 2, 1, 16),
            graceful_timeout_s=_int(env, "OBSERVASTACK_GRACEFUL_TIMEOUT_S", 10, 1, 120),
            data_dir=Path(env.get("OBSERVASTACK_DATA_DIR", "/tmp/sut-data")),
            metrics_dir=Path(metrics) if metrics else None,
            access_log=env.get("OBSERVASTACK_ACCESS_LOG") or None,
        )
