"""The SUT's settings, read once from the environment and validated at start.

- ``OBSERVASTACK_BIND`` (``0.0.0.0:8000``): Gunicorn's bind address.
- ``OBSERVASTACK_WORKERS`` (2): Gunicorn's ``-w`` (a HUP resets the count to it) and the desired
  worker count of a fresh runtime config.
- ``OBSERVASTACK_GRACEFUL_TIMEOUT_S`` (10): Gunicorn's graceful timeout.
- ``OBSERVASTACK_DATA_DIR`` (``/tmp/sut-data``): items, runtime config, flags and
  ``desired-workers.json``; a volume in compose, so they survive backend restarts.
- ``OBSERVASTACK_RUNTIME_DIR`` (``/tmp/sut-runtime``): faults and the shared rate-limit bucket;
  wiped when the master starts.
- ``OBSERVASTACK_ACCESS_LOG`` (unset): Gunicorn's access log file.
- ``OBSERVASTACK_CONTROL_REQUIRE_SUBJECT`` (1): refuse ``/config/*`` without the
  secure-gateway's verified-subject header.
- ``OBSERVASTACK_FAULT_CPU_MAX_CORES`` (min(4, CPU count)): cores all CPU faults may burn together.
- ``OBSERVASTACK_FAULT_MEMORY_MAX_MB`` (256): MiB all memory faults may hold together.
- ``PROMETHEUS_MULTIPROC_DIR`` (unset): multi-process metrics; set before the master starts.
"""

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


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (1/0, true/false, yes/no, on/off)")


@dataclass(frozen=True)
class SutConfig:
    """Settings of the backend service."""

    bind: str
    workers: int
    graceful_timeout_s: int
    data_dir: Path
    metrics_dir: Path | None
    access_log: str | None
    runtime_dir: Path = Path("/tmp/sut-runtime")
    control_require_subject: bool = True
    fault_cpu_max_cores: int = 2
    fault_memory_max_mb: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SutConfig:
        env = os.environ if env is None else env
        metrics = env.get("PROMETHEUS_MULTIPROC_DIR")
        cores = min(4, os.cpu_count() or 1)
        return cls(
            bind=env.get("OBSERVASTACK_BIND", "0.0.0.0:8000"),
            workers=_int(env, "OBSERVASTACK_WORKERS", 2, 1, 16),
            graceful_timeout_s=_int(env, "OBSERVASTACK_GRACEFUL_TIMEOUT_S", 10, 1, 120),
            data_dir=Path(env.get("OBSERVASTACK_DATA_DIR", "/tmp/sut-data")),
            metrics_dir=Path(metrics) if metrics else None,
            access_log=env.get("OBSERVASTACK_ACCESS_LOG") or None,
            runtime_dir=Path(env.get("OBSERVASTACK_RUNTIME_DIR", "/tmp/sut-runtime")),
            control_require_subject=_bool(env, "OBSERVASTACK_CONTROL_REQUIRE_SUBJECT", True),
            fault_cpu_max_cores=_int(env, "OBSERVASTACK_FAULT_CPU_MAX_CORES", cores, 1, 64),
            fault_memory_max_mb=_int(env, "OBSERVASTACK_FAULT_MEMORY_MAX_MB", 256, 1, 4096),
        )
