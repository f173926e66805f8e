"""Client of the Control Agent: status, signals, and checking that each signal took effect.

Data in: two ready ``httpx.Client`` objects. ``secure`` has the secure-path base URL and token auth
(the agent is reached as ``/agent/*`` through the secure-gateway); ``user`` has the user-path base
URL, used to see which worker answers ``/api/whoami``. Data out: ``AgentStatus`` snapshots, and
errors from ``pytest_observastack._errors``: ``SignalRejected`` when the agent refuses (400/503,
with its problem detail), ``PostconditionFailed`` when a signal was accepted but its effect was not
seen in time (what was expected, what was seen last, what to do), ``ControlError`` for anything
else.

Each action reads the status before, sends one signal, then waits (with a deadline) for its effect:

| action | signal | post-condition |
|---|---|---|
| ``reload`` | HUP | same master, every old worker gone, same count, a new worker answers |
| ``terminate`` / ``kill`` | TERM / KILL | the agent answers for a new generation with workers |
| ``reopen_logs`` | USR1 | same master, same workers |
| ``add_worker`` / ``remove_worker`` | TTIN / TTOU | count +1 / -1 (never below 1) |
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from pytest_observastack._errors import (
    ControlError,
    PostconditionFailed,
    SignalRejected,
    WaitTimeout,
)
from pytest_observastack._http import json_object as _json
from pytest_observastack._waits import wait_until

__all__ = ["AgentClient", "AgentStatus", "ProcessRef"]

T = TypeVar("T")

_AGENT_PROBLEM = "urn:observastack:agent:"
_CONVERGE_HINT = (
    "If the backend was stopped and started again, the agent stays exited (Docker cannot rejoin a "
    "stopped container's PID namespace): converge with `observastack up` (docker compose up -d)"
)


@dataclass(frozen=True, order=True)
class ProcessRef:
    """A process as the agent identifies it: pid plus start time."""

    pid: int
    create_time: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRef:
        return cls(int(data["pid"]), float(data["create_time"]))


@dataclass(frozen=True)
class AgentStatus:
    """One ``GET /agent/status`` answer."""

    master: ProcessRef
    master_title: str
    workers: tuple[ProcessRef, ...]
    generation: float
    agent_uptime_s: float
    backend_uptime_s: float
    signals: tuple[Mapping[str, Any], ...]
    raw: Mapping[str, Any]

    @property
    def master_pid(self) -> int:
        return self.master.pid

    @property
    def worker_pids(self) -> tuple[int, ...]:
        return tuple(worker.pid for worker in self.workers)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentStatus:
        try:
            return cls(
                master=ProcessRef.from_json(data["master"]),
                master_title=str(data["master"].get("title", "")),
                workers=tuple(ProcessRef.from_json(w) for w in data["workers"]),
                generation=float(data["generation"]),
                agent_uptime_s=float(data["agent_uptime_s"]),
                backend_uptime_s=float(data["backend_uptime_s"]),
                signals=tuple(data.get("signals", ())),
                raw=data,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ControlError(
                f"the agent's status is not in the expected shape ({exc!r}): {data!r:.300}; "
                "are the agent image and the plugin from the same version?"
            ) from exc

    def describe(self) -> str:
        return (
            f"master {self.master.pid} (started {self.master.create_time}), "
            f"workers {list(self.worker_pids)} ({len(self.workers)}), "
            f"generation {self.generation}"
        )


class AgentClient:
    """Talks to the agent through the secure-path and checks every action's effect."""

    def __init__(
        self,
        secure: httpx.Client,
        user: httpx.Client,
        *,
        poll_interval: float = 0.05,
        whoami_path: str = "/api/whoami",
    ) -> None:
        self.secure = secure
        self.user = user
        self.poll_interval = poll_interval
        self.whoami_path = whoami_path

    # -- reading -----------------------------------------------------------------------------

    def status(self) -> AgentStatus:
        """``GET /agent/status``; ``ControlError`` if the agent does not answer with one."""
        response = self._request("GET", "/agent/status")
        if response.status_code != 200:
            raise ControlError(
                f"GET /agent/status answered {response.status_code}: {_detail(response)}"
            )
        return AgentStatus.from_json(_json(response))

    def wait_rebound(self, previous_generation: float, timeout: float = 30.0) -> AgentStatus:
        """Wait until the agent answers for a generation other than ``previous_generation``.

        Connection errors, 502 and 503 are expected meanwhile: the agent dies with the backend's
        PID namespace and Docker restarts it. Raises ``WaitTimeout`` with what was seen last.
        """
        try:
            return self._wait(
                self.status,
                lambda s: s.generation != previous_generation,
                timeout=timeout,
                what=f"the agent to answer for a generation other than {previous_generation}",
            )
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{_CONVERGE_HINT}", last_seen=exc.last_seen) from None

    # -- signals -----------------------------------------------------------------------------

    def signal(self, name: str) -> dict[str, Any]:
        """``POST /agent/signals``; the 202 body, or ``SignalRejected`` for a 400/503 refusal."""
        return self._signal(name, answer_may_be_lost=False) or {}

    def reload(self, timeout: float = 10.0, *, workers: int | None = None) -> AgentStatus:
        """HUP: same master, every old worker gone, ``workers`` (default: as many as before)
        workers, and ``/api/whoami`` answered by a new worker of that master."""
        deadline = time.monotonic() + timeout
        before = self.status()
        expected = len(before.workers) if workers is None else workers
        old = set(before.workers)
        self._signal("HUP", answer_may_be_lost=False)
        after = self._settle(
            "reload (HUP)",
            before,
            lambda s: not old & set(s.workers) and len(s.workers) == expected,
            deadline,
            expected=(
                f"master {before.master.pid} unchanged, none of the workers "
                f"{list(before.worker_pids)} left, {expected} workers"
            ),
            advice=(
                "old workers outlive the graceful timeout (a stuck request?) or the count differs: "
                "HUP resets it to Gunicorn's -w, pass workers= if you scaled before; see the "
                "backend's log"
            ),
        )
        self._await_new_worker_serving(before, after, deadline)
        return after

    def terminate(self, timeout: float = 60.0) -> AgentStatus:
        """TERM: the backend shuts down gracefully and restarts; returns the new generation's
        status once its master has workers."""
        return self._end_generation("TERM", timeout)

    def kill(self, timeout: float = 30.0) -> AgentStatus:
        """KILL: the master dies at once and the backend restarts; returns the new status."""
        return self._end_generation("KILL", timeout)

    def reopen_logs(self, timeout: float = 5.0) -> AgentStatus:
        """USR1: Gunicorn reopens its log files; the master and its workers stay."""
        deadline = time.monotonic() + timeout
        before = self.status()
        self._signal("USR1", answer_may_be_lost=False)
        return self._settle(
            "reopen logs (USR1)",
            before,
            lambda s: s.workers == before.workers,
            deadline,
            expected=f"master {before.master.pid} and workers {list(before.worker_pids)} unchanged",
            advice="USR1 must not replace workers; check the backend's log for a crash",
        )

    def add_worker(self, timeout: float = 10.0) -> AgentStatus:
        """TTIN: one more worker."""
        return self._scale("TTIN", +1, timeout)

    def remove_worker(self, timeout: float = 10.0) -> AgentStatus:
        """TTOU: one worker fewer (Gunicorn keeps at least one)."""
        return self._scale("TTOU", -1, timeout)

    # -- internals ---------------------------------------------------------------------------

    def _scale(self, name: str, delta: int, timeout: float) -> AgentStatus:
        deadline = time.monotonic() + timeout
        before = self.status()
        expected = max(1, len(before.workers) + delta)
        self._signal(name, answer_may_be_lost=False)
        return self._settle(
            f"{'add' if delta > 0 else 'remove'} worker ({name})",
            before,
            lambda s: len(s.workers) == expected,
            deadline,
            expected=f"master {before.master.pid} unchanged and {expected} workers",
            advice=(
                "a new worker may fail to boot (see the backend's log), or the removed one is "
                "still finishing requests within the graceful timeout; raise timeout= if so"
            ),
        )

    def _end_generation(self, name: str, timeout: float) -> AgentStatus:
        deadline = time.monotonic() + timeout
        before = self.status()
        self._signal(name, answer_may_be_lost=True)
        what = f"{name}: a new backend generation (old {before.generation}) with workers"
        try:
            return self._wait(
                self.status,
                lambda s: s.generation != before.generation and len(s.workers) > 0,
                timeout=max(0.0, deadline - time.monotonic()),
                what=what,
            )
        except WaitTimeout as exc:
            raise PostconditionFailed(
                f"{name} was accepted but the control plane did not come back: expected "
                f"the agent to answer for a new generation (old: {before.describe()}) with at "
                f"least one worker within {timeout:.1f} s; last seen: {_seen(exc.last_seen)}\n"
                "What to do: check that the backend's restart policy restarted it (docker compose "
                f"ps). {_CONVERGE_HINT}"
            ) from exc

    def _settle(
        self,
        action: str,
        before: AgentStatus,
        effect: Callable[[AgentStatus], bool],
        deadline: float,
        *,
        expected: str,
        advice: str,
    ) -> AgentStatus:
        """Wait until ``effect`` holds, failing at once if the master changed meanwhile."""
        timeout = max(0.0, deadline - time.monotonic())
        try:
            after = self._wait(
                self.status,
                lambda s: s.master != before.master or effect(s),
                timeout=timeout,
                what=f"{action} to take effect",
            )
        except WaitTimeout as exc:
            raise PostconditionFailed(
                f"{action}: expected {expected} within {timeout:.1f} s; "
                f"last seen: {_seen(exc.last_seen)}\nWhat to do: {advice}"
            ) from exc
        if after.master != before.master:
            raise PostconditionFailed(
                f"{action}: expected {expected}, but the master changed: before "
                f"{before.describe()}; after {after.describe()}. The backend restarted during "
                "the action; look at its log and restart count (docker compose ps)"
            )
        return after

    def _await_new_worker_serving(
        self, before: AgentStatus, after: AgentStatus, deadline: float
    ) -> None:
        old_pids = set(before.worker_pids)
        master = after.master.pid
        timeout = max(0.0, deadline - time.monotonic())
        try:
            self._wait(
                self._whoami,
                lambda who: who.get("ppid") == master and who.get("pid") not in old_pids,
                timeout=timeout,
                what=f"a new worker of master {master} to answer {self.whoami_path}",
            )
        except WaitTimeout as exc:
            raise PostconditionFailed(
                f"reload (HUP): workers were replaced ({list(before.worker_pids)} -> "
                f"{list(after.worker_pids)}) but {self.whoami_path} on the user path did not "
                f"answer from a new worker (ppid {master}, pid not in {sorted(old_pids)}) within "
                f"{timeout:.1f} s; last seen: {_seen(exc.last_seen)}\nWhat to do: check the "
                "user-gateway and the backend's log (new workers may fail while booting)"
            ) from exc

    def _whoami(self) -> dict[str, Any]:
        response = self.user.get(self.whoami_path)
        response.raise_for_status()
        return _json(response)

    def _signal(self, name: str, *, answer_may_be_lost: bool) -> dict[str, Any] | None:
        """Send ``name``. With ``answer_may_be_lost`` (TERM, KILL: the agent dies with the
        namespace) a lost answer returns None; the caller's post-condition decides."""
        try:
            response = self.secure.post("/agent/signals", json={"signal": name})
        except httpx.TransportError as exc:
            if answer_may_be_lost:
                return None
            raise ControlError(
                f"POST /agent/signals {name!r} failed: {type(exc).__name__}: {exc}; is the "
                "secure-gateway up and the agent healthy (docker compose ps)?"
            ) from exc
        if response.status_code == 202:
            return _json(response)
        from_agent = _problem_type(response).startswith(_AGENT_PROBLEM)
        if response.status_code in (400, 503) and from_agent:
            raise SignalRejected(
                f"the agent refused {name!r} (HTTP {response.status_code}): {_detail(response)}"
            )
        if answer_may_be_lost and response.status_code in (502, 503, 504):
            return None
        raise ControlError(
            f"POST /agent/signals {name!r} answered {response.status_code}: {_detail(response)}"
        )

    def _request(self, method: str, path: str) -> httpx.Response:
        try:
            return self.secure.request(method, path)
        except httpx.TransportError as exc:
            raise ControlError(
                f"{method} {path} failed: {type(exc).__name__}: {exc}; is the secure-gateway up "
                "and the agent healthy (docker compose ps)?"
            ) from exc

    def _wait(
        self, probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float, what: str
    ) -> T:
        return wait_until(probe, done, timeout=timeout, what=what, interval=self.poll_interval)


def _problem_type(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("type", "")) if isinstance(data, dict) else ""


def _detail(response: httpx.Response) -> str:
    """The problem document's detail, or the start of the body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    challenge = response.headers.get("www-authenticate")
    suffix = (
        f" (WWW-Authenticate: {challenge}; is the token valid for this audience?)"
        if challenge
        else ""
    )
    if isinstance(data, dict) and "detail" in data:
        title = data.get("title")
        return (f"{title}: {data['detail']}" if title else str(data["detail"])) + suffix
    return repr(response.text[:300]) + suffix


def _seen(last: object) -> str:
    return last.describe() if isinstance(last, AgentStatus) else str(last)
