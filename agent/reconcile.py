"""Worker-count reconciliation: converge Gunicorn's live workers to the desired count.

The desired count is application state (``PATCH /config/runtime {"desired_workers": N}`` on the
backend); the app never signals its own master. The backend publishes it in its data directory
(``/var/lib/sut/desired-workers.json``: ``{"desired_workers", "config_version", ...}``) and the
agent reads that file through ``/proc/<master pid>/root/...``: same uid, shared PID namespace, no
network path to the backend needed (PTRACE_MODE_READ on the master, which the kernel grants to a
process of the same uid without extra capabilities).

Every tick (the watch interval) ``Reconciler.step``:

1. reads the desired count (unreadable: state ``unknown``, nothing is sent);
2. lists the master's workers; workers older than the last HUP the agent delivered are on their
   way out (HUP starts ``-w`` new workers and stops the old ones), so it waits (``reloading``);
3. after a TTIN/TTOU it waits for the count to move (``waiting``, up to ``move_timeout_s``);
4. after a TTIN/TTOU that a caller sent through ``POST /agent/signals`` it holds off for
   ``manual_hold_s`` (``held``): an instructor's manual scaling is visible for a while before the
   desired state wins again;
5. acts only when the worker set has not changed for ``settle_s`` (``settling``; this also
   covers a HUP sent by someone else, whose old workers take up to ~1.2 s to leave);
6. sends one TTIN or TTOU toward the desired count, through the same pidfd-checked path as the
   API, recorded in the signal history as caller ``agent:reconciler``.

A HUP resets Gunicorn's count to ``-w``; the next ticks see the difference and converge again.
``snapshot()`` is what ``GET /agent/status`` reports under ``reconcile``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psutil

from agent.audit import SignalRecord, utc_now
from agent.discovery import ProcessId
from agent.errors import ConfigError, MasterNotFound, SignalRefused
from agent.signals import ALLOWED_SIGNALS

__all__ = [
    "DEFAULT_DESIRED_FILE",
    "DesiredUnavailable",
    "DesiredWorkers",
    "ProcRootFile",
    "ReconcileSettings",
    "Reconciler",
    "for_core",
    "process_clock",
]

DEFAULT_DESIRED_FILE = "/var/lib/sut/desired-workers.json"
CALLER = "agent:reconciler"
MAX_FILE_BYTES = 4096
log = logging.getLogger("agent.reconcile")


def process_clock(wall: float) -> float:
    """Map a wall-clock time onto psutil's ``create_time`` scale.

    psutil computes ``create_time`` as ``btime`` (whole seconds, from /proc/stat) plus the start
    time in clock ticks since boot, so it can be up to 1 s off the wall clock. Through
    CLOCK_BOOTTIME the mapping is exact to a clock tick (10 ms), which is what telling "started
    before the HUP" from "started 30 ms after it" needs.
    """
    since_boot = wall - time.time() + time.clock_gettime(time.CLOCK_BOOTTIME)
    return float(psutil.boot_time()) + since_boot


class DesiredUnavailable(Exception):
    """The desired count cannot be read now; the message says why and what to check."""


@dataclass(frozen=True)
class DesiredWorkers:
    workers: int
    config_version: int


@dataclass(frozen=True, kw_only=True)
class ReconcileSettings:
    """Read from ``OBSERVASTACK_AGENT_DESIRED_WORKERS_FILE`` (a path in the backend's file
    system; empty: no reconciliation), ``OBSERVASTACK_AGENT_RECONCILE_SETTLE_S`` (1.5),
    ``OBSERVASTACK_AGENT_RECONCILE_MOVE_TIMEOUT_S`` (20),
    ``OBSERVASTACK_AGENT_RECONCILE_MANUAL_HOLD_S`` (15) and ``OBSERVASTACK_AGENT_MAX_WORKERS``
    (16)."""

    desired_file: str = DEFAULT_DESIRED_FILE
    settle_s: float = 1.5
    move_timeout_s: float = 20.0
    manual_hold_s: float = 15.0
    max_workers: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcileSettings:
        defaults = cls()
        path = env.get("OBSERVASTACK_AGENT_DESIRED_WORKERS_FILE", defaults.desired_file).strip()
        if path and not path.startswith("/"):
            raise ConfigError(
                f"OBSERVASTACK_AGENT_DESIRED_WORKERS_FILE={path!r} must be an absolute path "
                "in the backend's file system (or empty to turn reconciliation off)"
            )
        return cls(
            desired_file=path,
            settle_s=_number(env, "RECONCILE_SETTLE_S", defaults.settle_s, 0.0, 60.0),
            move_timeout_s=_number(
                env, "RECONCILE_MOVE_TIMEOUT_S", defaults.move_timeout_s, 1, 600
            ),
            manual_hold_s=_number(env, "RECONCILE_MANUAL_HOLD_S", defaults.manual_hold_s, 0, 3600),
            max_workers=int(_number(env, "MAX_WORKERS", defaults.max_workers, 1, 64)),
        )


def _number(env: Mapping[str, str], suffix: str, default: float, lo: float, hi: float) -> float:
    name = f"OBSERVASTACK_AGENT_{suffix}"
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; unset it to use {default}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={raw!r} must be between {lo} and {hi}; unset it for {default}")
    return value


class DesiredSource(Protocol):
    def read(self) -> DesiredWorkers: ...

    def describe(self) -> str: ...


class ProcRootFile:
    """The desired-workers file as the backend sees it: ``/proc/<master>/root/<path>``."""

    def __init__(self, master_pid: Callable[[], int], path: str, max_workers: int) -> None:
        self.master_pid = master_pid
        self.path = path
        self.max_workers = max_workers

    def describe(self) -> str:
        return f"/proc/{self.master_pid()}/root{self.path}"

    def read(self) -> DesiredWorkers:
        where = self.describe()
        try:
            with open(where, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise DesiredUnavailable(
                f"{where} does not exist (yet): the backend writes it within 200 ms of starting "
                "and on every config change"
            ) from None
        except PermissionError:
            raise DesiredUnavailable(
                f"{where}: permission denied; the agent must run as the backend's uid and share "
                "its PID namespace (compose: pid: 'service:backend')"
            ) from None
        except OSError as exc:
            raise DesiredUnavailable(f"{where}: {exc.strerror or exc}") from None
        return self.parse(raw, where)

    def parse(self, raw: bytes, where: str) -> DesiredWorkers:
        if len(raw) > MAX_FILE_BYTES:
            raise DesiredUnavailable(f"{where} is larger than {MAX_FILE_BYTES} bytes; ignored")
        try:
            data = json.loads(raw)
            workers, version = data["desired_workers"], data["config_version"]
        except (ValueError, TypeError, KeyError) as exc:
            raise DesiredUnavailable(f"{where} is not the expected JSON ({exc!r})") from None
        valid = all(isinstance(v, int) and not isinstance(v, bool) for v in (workers, version))
        if not valid or not 1 <= workers <= self.max_workers:
            raise DesiredUnavailable(
                f"{where}: desired_workers must be an integer in 1..{self.max_workers}, "
                f"got {workers!r}"
            )
        return DesiredWorkers(workers, version)


@dataclass(frozen=True)
class _Pending:
    signal: str
    from_count: int
    sent_at: float  # monotonic
    sent_at_wall: str


class Reconciler:
    """Converges the worker count, one TTIN/TTOU at a time; thread-safe ``snapshot()``."""

    def __init__(
        self,
        source: DesiredSource,
        workers: Callable[[], Sequence[ProcessId]],
        send: Callable[[str], None],
        *,
        last_hup: Callable[[], float | None] = lambda: None,
        last_manual: Callable[[], float | None] = lambda: None,
        settings: ReconcileSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        to_process_clock: Callable[[float], float] | None = None,
    ) -> None:
        self.source = source
        self.list_workers = workers
        self.send = send
        self.last_hup = last_hup
        self.last_manual = last_manual
        self.settings = settings or ReconcileSettings()
        self.clock = clock
        self.wall = wall
        self.to_process_clock = to_process_clock or process_clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: frozenset[ProcessId] | None = None
        self._stable_since = clock()
        self._pending: _Pending | None = None
        self._status: dict[str, Any] = {"state": "starting", "converged": False}
        self.actions = 0

    # -- one tick ----------------------------------------------------------------------------

    def step(self) -> dict[str, Any]:
        now = self.clock()
        status: dict[str, Any] = {"source": self.source.describe(), "checked_at": utc_now()}
        try:
            desired: DesiredWorkers | None = self.source.read()
        except DesiredUnavailable as exc:
            desired = None
            status.update(state="unknown", detail=str(exc))
        try:
            workers = tuple(self.list_workers())
        except MasterNotFound as exc:
            return self._publish({**status, "state": "master-gone", "detail": str(exc)})
        ids = frozenset(workers)
        if ids != self._seen:
            self._seen, self._stable_since = ids, now
        hup = self.last_hup()
        if hup is not None and self.wall() - hup > self.settings.move_timeout_s:
            hup = None  # old workers outlived any graceful timeout: stop waiting for them
        cutoff = self.to_process_clock(hup) - 0.05 if hup is not None else None
        outgoing = [w for w in workers if cutoff is not None and w.create_time < cutoff]
        live = len(workers) - len(outgoing)
        status.update(
            desired=desired.workers if desired else None,
            config_version=desired.config_version if desired else None,
            live=live,
            workers=len(workers),
            outgoing=len(outgoing),
        )
        if desired is None:
            return self._publish(status)
        state, detail = self._decide(desired.workers, live, len(workers), bool(outgoing), now)
        return self._publish({**status, "state": state, "detail": detail})

    def _decide(
        self, desired: int, live: int, total: int, reloading: bool, now: float
    ) -> tuple[str, str]:
        pending = self._pending
        if pending is not None:
            if total != pending.from_count:
                self._pending = None
            elif now - pending.sent_at < self.settings.move_timeout_s:
                return "waiting", f"{pending.signal} sent; waiting for the count to leave {total}"
            else:
                self._pending = None
                log.warning(
                    "worker count did not move after %s (still %d); will retry",
                    pending.signal, total, extra={"event": "reconcile_stuck"},
                )  # fmt: skip
        if reloading:
            return "reloading", "workers from before the last HUP are still leaving"
        manual = self.last_manual()
        if manual is not None and self.wall() - manual < self.settings.manual_hold_s:
            left = self.settings.manual_hold_s - (self.wall() - manual)
            return "held", f"a caller scaled by hand; converging to {desired} in {left:.1f} s"
        if now - self._stable_since < self.settings.settle_s:
            return "settling", f"the worker set changed less than {self.settings.settle_s} s ago"
        if live == desired:
            return "converged", f"{live} workers, as desired"
        name = "TTIN" if live < desired else "TTOU"
        try:
            self.send(name)
        except SignalRefused as exc:
            return "error", f"{name} was not sent: {exc}"
        self.actions += 1
        self._pending = _Pending(name, total, now, utc_now())
        log.info(
            "sent %s: %d live workers, %d desired", name, live, desired,
            extra={"event": "reconcile", "signal": name, "live": live, "desired": desired},
        )  # fmt: skip
        return (
            "scaling-up" if name == "TTIN" else "scaling-down"
        ), f"sent {name} ({live} -> {desired})"

    def _publish(self, status: dict[str, Any]) -> dict[str, Any]:
        pending = self._pending
        status["pending"] = (
            {"signal": pending.signal, "from": pending.from_count, "sent_at": pending.sent_at_wall}
            if pending
            else None
        )
        status["converged"] = status.get("state") == "converged"
        status["actions"] = self.actions
        with self._lock:
            self._status = status
        return status

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._status)

    # -- thread ------------------------------------------------------------------------------

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="agent-reconcile", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.step()
            except Exception:  # reconciling is best effort; the watch decides the agent's fate
                log.exception("reconcile step failed", extra={"event": "reconcile_failed"})


class _Core(Protocol):
    """What ``agent.runtime.AgentCore`` offers the reconciler."""

    @property
    def master(self) -> ProcessId: ...
    @property
    def discovery(self) -> Any: ...
    @property
    def history(self) -> Any: ...
    def open_target(self) -> Any: ...


def for_core(core: _Core, settings: ReconcileSettings) -> Reconciler:
    """A reconciler wired to the agent's bound master, signal path and history."""

    def send(name: str) -> None:
        sig = ALLOWED_SIGNALS[name]
        target = core.open_target()
        with target:
            result, status, detail = "delivered", 202, "sent by the reconciler"
            try:
                target.send(sig)
            except SignalRefused as exc:
                result, status, detail = "refused", 503, str(exc)
                raise
            finally:
                core.history.add(
                    SignalRecord(
                        at=utc_now(),
                        caller=CALLER,
                        requested=name,
                        signal=sig.name,
                        target_pid=target.ident.pid,
                        target_create_time=target.ident.create_time,
                        result=result,
                        status=status,
                        detail=detail,
                    )
                )

    def last(names: tuple[str, ...], *, manual: bool = False) -> float | None:
        times = [
            datetime.fromisoformat(r.at).timestamp()
            for r in core.history.snapshot()
            if r.signal in names and r.result == "delivered" and not (manual and r.caller == CALLER)
        ]
        return max(times) if times else None

    source = ProcRootFile(lambda: core.master.pid, settings.desired_file, settings.max_workers)
    return Reconciler(
        source,
        lambda: core.discovery.workers(core.master),
        send,
        last_hup=lambda: last(("HUP", "SIGHUP")),
        last_manual=lambda: last(("TTIN", "SIGTTIN", "TTOU", "SIGTTOU"), manual=True),
        settings=settings,
    )
