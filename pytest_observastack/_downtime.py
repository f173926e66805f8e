"""Downtime as an operator sees it: a probe in a thread, the windows in which it failed, and the
record of one chaos action.

Data in: a probe callable (any exception means "down"); ``ControlPlaneProbe`` is the usual one: a
fresh token from the token source, then ``GET /agent/status`` through the secure-path. Data out:
``DowntimeWindow`` (start and end on the wall clock, so windows from xdist workers compare, and
the last error seen) and ``ChaosEvent`` (what, started, ended, windows), which travels to the
report as a plain dict (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_observastack._errors import ControlError
from pytest_observastack._tokens import TokenSource

__all__ = ["ChaosEvent", "ControlPlaneProbe", "DowntimeProbe", "DowntimeWindow"]


@dataclass(frozen=True)
class DowntimeWindow:
    """A span in which every probe failed: from the first failed probe to the next good one."""

    start: float  # wall clock (time.time()): comparable across xdist workers
    end: float
    last_error: str

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ChaosEvent:
    """One chaos action, from its start to the verified steady state."""

    what: str
    started: float
    ended: float
    downtime: tuple[DowntimeWindow, ...] = ()

    @property
    def downtime_s(self) -> float:
        return sum(window.duration_s for window in self.downtime)

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "started": self.started,
            "ended": self.ended,
            "downtime": [
                {"start": w.start, "end": w.end, "duration_s": round(w.duration_s, 3),
                 "last_error": w.last_error}
                for w in self.downtime
            ],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChaosEvent:
        windows = tuple(
            DowntimeWindow(float(w["start"]), float(w["end"]), str(w.get("last_error", "")))
            for w in data.get("downtime", ())
        )
        return cls(str(data["what"]), float(data["started"]), float(data["ended"]), windows)


class DowntimeProbe:
    """Calls ``probe`` every ``interval_s`` in a thread; a raising probe means "down"."""

    def __init__(
        self,
        probe: Callable[[], object],
        *,
        interval_s: float = 0.1,
        max_s: float = 900.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.probe = probe
        self.interval_s = interval_s
        self.max_s = max_s  # a forgotten probe stops by itself
        self.clock = clock
        self.windows: list[DowntimeWindow] = []
        self._down_since: float | None = None
        self._last_error = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="observastack-downtime", daemon=True)

    def start(self) -> DowntimeProbe:
        self._thread.start()
        return self

    def stop(self) -> tuple[DowntimeWindow, ...]:
        """Stop, take one last observation, and close a window still open."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.observe()
        with self._lock:
            if self._down_since is not None:
                self.windows.append(DowntimeWindow(
                    self._down_since, self.clock(), f"{self._last_error} (still down at the end)"
                ))  # fmt: skip
                self._down_since = None
            return tuple(self.windows)

    def observe(self) -> None:
        sent = self.clock()
        try:
            self.probe()
        except Exception as exc:
            with self._lock:
                self._last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self._down_since is None:
                    self._down_since = sent
            return
        with self._lock:
            if self._down_since is not None:
                self.windows.append(DowntimeWindow(self._down_since, sent, self._last_error))
                self._down_since = None

    def _run(self) -> None:
        limit = time.monotonic() + self.max_s
        while not self._stop.is_set() and time.monotonic() < limit:
            self.observe()
            self._stop.wait(self.interval_s)


class ControlPlaneProbe:
    """The control plane as an operator sees it: a fresh token, then ``GET /agent/status``."""

    def __init__(self, secure_url: str, source: TokenSource, *, timeout_s: float = 1.0) -> None:
        self.source = source
        self.client = httpx.Client(base_url=secure_url, timeout=timeout_s, trust_env=False)

    def __call__(self) -> None:
        token = self.source.token()
        response = self.client.get("/agent/status", headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise ControlError(f"GET /agent/status answered {response.status_code}")

    def close(self) -> None:
        self.client.close()
