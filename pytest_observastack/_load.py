"""Bounded background load on the user-path, sent from the ``loadgen`` container (public side).

The runner starts ``python -m loadgen run ...`` inside the container (runner side may use the
engine; the agent never does) and reads its JSON result when the run ends by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from pytest_observastack._errors import ControlError
from pytest_observastack._stack import Stack

__all__ = ["LoadResult", "LoadRun"]


@dataclass(frozen=True)
class LoadResult:
    sent: int
    ok: int
    failed: int
    failed_by_reason: dict[str, int]
    status_counts: dict[str, int]
    latency_s: dict[str, float | None]
    achieved_rate: float
    duration_s: float
    first_failures: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def describe(self) -> str:
        p = self.latency_s
        reasons = self.failed_by_reason or ""
        return (f"sent {self.sent} at {self.achieved_rate}/s, ok {self.ok}, failed {self.failed} "
                f"{reasons}, p50 {p.get('p50')}, p99 {p.get('p99')} s")  # fmt: skip


class LoadRun:
    """``with LoadRun(stack, rate=200, duration_s=10) as run: ...; run.result``"""

    def __init__(
        self,
        stack: Stack,
        *,
        path: str = "/api/whoami",
        rate: float = 200.0,
        duration_s: float = 10.0,
        concurrency: int = 32,
        timeout_s: float = 5.0,
        keepalive: bool = True,
    ) -> None:
        if not path.startswith("/api/"):
            raise ValueError(f"load goes to the user-path only (/api/...), not {path!r}")
        self.stack = stack
        self.argv = [
            "python", "-m", "loadgen", "run", "--url", f"http://user-gateway:8080{path}",
            "--rate", str(rate), "--duration", str(duration_s),
            "--concurrency", str(concurrency), "--timeout", str(timeout_s),
        ] + ([] if keepalive else ["--no-keepalive"])  # fmt: skip
        self.duration_s = duration_s
        self._proc: subprocess.Popen[str] | None = None
        self._result: LoadResult | None = None

    def start(self) -> LoadRun:
        compose = self.stack.compose
        argv = compose.argv("exec", "-T", "loadgen", *self.argv)
        env = {**os.environ, **compose.env, "OBSERVASTACK_PROJECT": compose.project}
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        return self

    def wait(self) -> LoadResult:
        if self._result is not None:
            return self._result
        if self._proc is None:
            raise ControlError("the load run was never started")
        try:
            out, err = self._proc.communicate(timeout=self.duration_s + 60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, err = self._proc.communicate()
            raise ControlError(
                f"the load run did not end within {self.duration_s + 60:.0f} s"
            ) from None
        if self._proc.returncode != 0:
            raise ControlError(f"the load run failed (exit {self._proc.returncode}): {err[-800:]}")
        self._result = LoadResult.from_json(json.loads(out))
        return self._result

    @property
    def result(self) -> LoadResult:
        return self.wait()

    def __enter__(self) -> LoadRun:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.wait()
        elif self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
