"""A paced, bounded HTTP load with a result per request (httpx, asyncio)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["LoadPlan", "run_load"]

MAX_DURATION_S = 600.0
MAX_REQUESTS = 200_000


@dataclass(frozen=True)
class LoadPlan:
    url: str
    rate: float  # requests per second
    duration_s: float
    concurrency: int = 32
    timeout_s: float = 5.0
    keepalive: bool = True
    max_requests: int = MAX_REQUESTS

    def __post_init__(self) -> None:
        if not 0 < self.rate <= 5_000:
            raise ValueError(f"rate must be in (0, 5000] req/s, got {self.rate}")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S}] s, got {self.duration_s}")
        if not 1 <= self.max_requests <= MAX_REQUESTS:
            raise ValueError(f"max_requests must be in 1..{MAX_REQUESTS}")


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    first_failures: list[dict[str, Any]] = field(default_factory=list)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def _one(
    client: httpx.AsyncClient, url: str, tally: _Tally, started_at: float, gate: asyncio.Semaphore
) -> None:
    try:
        await _measure(client, url, tally, started_at)
    finally:
        gate.release()


async def _measure(client: httpx.AsyncClient, url: str, tally: _Tally, started_at: float) -> None:
    t0 = time.perf_counter()
    reason: str | None = None
    try:
        response = await client.get(url)
        tally.statuses[str(response.status_code)] += 1
        if response.status_code >= 500:
            reason = f"http_{response.status_code}"
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
    elapsed = time.perf_counter() - t0
    tally.latencies.append(elapsed)
    if reason is not None:
        tally.failures[reason] += 1
        if len(tally.first_failures) < 20:
            tally.first_failures.append({"at_s": round(t0 - started_at, 3), "reason": reason})


async def _run(plan: LoadPlan) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=plan.concurrency,
        max_keepalive_connections=plan.concurrency if plan.keepalive else 0,
    )
    headers = {} if plan.keepalive else {"Connection": "close"}
    tally = _Tally()
    in_flight: set[asyncio.Task[None]] = set()
    gate = asyncio.Semaphore(plan.concurrency)
    sent = 0
    async with httpx.AsyncClient(
        timeout=plan.timeout_s, limits=limits, headers=headers, trust_env=False
    ) as client:
        started = time.perf_counter()
        interval = 1.0 / plan.rate
        while sent < plan.max_requests:
            due = started + sent * interval
            now = time.perf_counter()
            if due - started >= plan.duration_s:
                break
            if due > now:
                await asyncio.sleep(due - now)
            await gate.acquire()
            task = asyncio.create_task(_one(client, plan.url, tally, started, gate))
            task.add_done_callback(in_flight.discard)
            in_flight.add(task)
            sent += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=plan.timeout_s + 1)
        elapsed = time.perf_counter() - started
    lat = sorted(tally.latencies)
    failed = sum(tally.failures.values())
    return {
        "url": plan.url,
        "sent": sent,
        "ok": sent - failed,
        "failed": failed,
        "failed_by_reason": dict(tally.failures),
        "first_failures": tally.first_failures,
        "status_counts": dict(tally.statuses),
        "duration_s": round(elapsed, 3),
        "achieved_rate": round(sent / elapsed, 1) if elapsed else 0.0,
        "latency_s": {
            "p50": _percentile(lat, 0.50),
            "p90": _percentile(lat, 0.90),
            "p99": _percentile(lat, 0.99),
            "max": lat[-1] if lat else None,
        },
    }


def run_load(plan: LoadPlan) -> dict[str, Any]:
    """Run the plan to completion (bounded by its duration and request cap) and summarise it."""
    return asyncio.run(_run(plan))
