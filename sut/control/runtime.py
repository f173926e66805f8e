"""``Control``: one worker's handle on the application channel, and its background tick.

Built per worker when the server starts (SQLite connections and the bucket's mapping must not
cross a fork). ``refresh()`` runs first on every request; ``tick()`` every 200 ms does what must
happen without requests: CPU/memory hogs (``pressure``), the desired-workers file for the Control
Agent, and the gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from sut.config import SutConfig
from sut.control.limits import SharedTokenBucket, SimulatedPool
from sut.control.model import FAULT_KINDS, FLAG_CATALOG, FaultLimits, default_config
from sut.control.pressure import PressureOwner
from sut.control.state import ControlState, Snapshot
from sut.control.store import ControlStore
from sut.metrics import instruments

__all__ = ["TICK_S", "Control"]

TICK_S = 0.2
log = logging.getLogger("sut.control")


class Control:
    def __init__(
        self,
        config: SutConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.limits = FaultLimits(config.fault_cpu_max_cores, config.fault_memory_max_mb)
        self.store = ControlStore(
            config.data_dir, config.runtime_dir, default_config(config.workers), clock=clock
        )
        self.state = ControlState(self.store)
        self.bucket = SharedTokenBucket(config.runtime_dir / "ratelimit.bin", clock=monotonic)
        self.pool = SimulatedPool()
        self.pressure = PressureOwner(config.runtime_dir / "pressure.lock")
        self._published_version: int | None = None
        self._flag_series: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self.refresh()

    def refresh(self) -> Snapshot:
        snapshot = self.state.refresh()
        self.pool.configure(snapshot.settings.pool_size, snapshot.held_connections(self.clock()))
        return snapshot

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="control-tick")

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # a failed tick must not end the ticking; log and go on
                log.exception("control tick failed")
            await asyncio.sleep(TICK_S)

    def tick(self) -> None:
        snapshot = self.refresh()
        now = self.clock()
        self.pressure.reconcile(snapshot.live_faults(now), now)
        self._publish_desired_workers(snapshot)
        self._update_gauges(snapshot, now)

    def _publish_desired_workers(self, snapshot: Snapshot) -> None:
        version = snapshot.config.version
        if self._published_version == version:
            return
        if self.store.published_desired_version() != version:
            self.store.write_desired_workers(snapshot.config)
        self._published_version = version

    def _update_gauges(self, snapshot: Snapshot, now: float) -> None:
        ins = instruments()
        settings = snapshot.settings
        ins.config_version.set(snapshot.config.version)
        ins.workers_desired.set(settings.desired_workers)
        values = {
            "rate_limit_rps": settings.rate_limit_rps if settings.rate_limit_enabled else 0.0,
            "rate_limit_burst": settings.rate_limit_burst,
            "request_timeout_seconds": settings.request_timeout_s,
            "pool_size": settings.pool_size,
            "pool_acquire_timeout_seconds": settings.pool_acquire_timeout_s,
            "fault_max_duration_seconds": settings.fault_max_duration_s,
        }
        for setting, amount in values.items():
            ins.config_setting.labels(setting=setting).set(amount)
        live = snapshot.live_faults(now)
        for kind in FAULT_KINDS:
            ins.faults_active.labels(kind=kind).set(sum(1 for f in live if f.kind == kind))
        series: set[tuple[str, str]] = set()
        for name in sorted(set(FLAG_CATALOG) | set(snapshot.flags)):
            value = snapshot.flag(name)
            stored = snapshot.flags.get(name)
            known = FLAG_CATALOG.get(name)
            variants = (stored.variants if stored else None) or (known.variants if known else None)
            current = str(value).lower() if isinstance(value, bool) else str(value)
            options = ["true", "false"] if isinstance(value, bool) else list(variants or [current])
            for option in options:
                series.add((name, option))
                ins.flag_state.labels(flag=name, variant=option).set(option == current)
        for name, option in self._flag_series - series:  # a deleted custom flag, a new variant set
            ins.flag_state.labels(flag=name, variant=option).set(0)
        self._flag_series |= series
        ins.pool_in_use.set(self.pool.in_use)
        ins.pool_waiting.set(self.pool.waiting)
        ins.pool_capacity.set(self.pool.capacity)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.pressure.close()
        self.bucket.close()
        self.store.close()
