"""The rate limiter (one token bucket shared by every worker) and the simulated downstream pool.

The bucket lives in a 32-byte file under the runtime directory, mapped into every worker and
updated under ``flock``: the limit applies to the backend as a whole, whatever the worker count.
``time.monotonic()`` is one clock for every process on a Linux host (CLOCK_MONOTONIC), so workers
agree on refill times.

The pool is per worker, like a real connection pool in each Gunicorn worker: ``size``
connections, requests queue for ``acquire_timeout`` and then fail with ``PoolExhausted``
(503). A pool_exhaustion fault holds some or all connections.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import mmap
import os
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = ["PoolExhausted", "SharedTokenBucket", "SimulatedPool"]

_LAYOUT = struct.Struct("=dddd")  # tokens, last refill (monotonic), rps, burst


class SharedTokenBucket:
    """``take(rps, burst)``: None when a token was available, else seconds until one is."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < _LAYOUT.size:
            os.ftruncate(self._fd, _LAYOUT.size)
        self._map = mmap.mmap(self._fd, _LAYOUT.size)

    def take(self, rps: float, burst: int) -> float | None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            tokens, last, old_rps, old_burst = _LAYOUT.unpack_from(self._map)
            now = self.clock()
            if (old_rps, old_burst) != (rps, float(burst)) or last <= 0 or now < last:
                tokens, last = float(burst), now  # new settings (or a new boot): a full bucket
            tokens = min(float(burst), tokens + (now - last) * rps)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = None
            else:
                wait = (1.0 - tokens) / rps
            _LAYOUT.pack_into(self._map, 0, tokens, now, rps, float(burst))
            return wait
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


def retry_after(wait_s: float) -> str:
    """Retry-After is whole seconds (RFC 9110); never 0 for a refusal."""
    return str(max(1, math.ceil(wait_s)))


class PoolExhausted(Exception):
    def __init__(self, waited_s: float, capacity: int, in_use: int, waiting: int) -> None:
        self.waited_s = waited_s
        super().__init__(
            f"no downstream connection within {waited_s:.3f} s: {in_use} of {capacity} in use "
            f"in this worker, {waiting} requests queued"
        )


class SimulatedPool:
    def __init__(self, size: int = 1) -> None:
        self.size = size
        self.held = 0
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> int:
        return max(0, self.size - self.held)

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    def configure(self, size: int, held: int) -> None:
        self.size, self.held = size, held
        self._wake()

    async def acquire(self, timeout: float) -> None:
        if self.in_use < self.capacity and not self.waiting:
            self.in_use += 1
            return
        started = time.monotonic()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise PoolExhausted(
                time.monotonic() - started, self.capacity, self.in_use, self.waiting
            ) from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a connection just as the request was cancelled
            raise
        finally:
            if waiter in self._waiters and waiter.done():
                self._waiters.remove(waiter)

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    @asynccontextmanager
    async def connection(self, timeout: float) -> AsyncIterator[None]:
        await self.acquire(timeout)
        try:
            yield
        finally:
            self.release()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.capacity:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_use += 1
                waiter.set_result(None)
