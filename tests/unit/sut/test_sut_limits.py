"""Rate limit (429), request timeout (504) and the simulated downstream pool (503), through the
app and as units."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from sut.control.limits import PoolExhausted, SharedTokenBucket, SimulatedPool, retry_after

from .conftest import AsgiClient


def configure(sut: AsgiClient, **changes: Any) -> None:
    etag = sut.control("GET", "/config/runtime").headers["etag"]
    response = sut.control("PATCH", "/config/runtime", json=changes, headers={"If-Match": etag})
    assert response.status_code == 200, response.text


def test_over_the_rate_limit_is_429_with_retry_after(sut: AsgiClient) -> None:
    configure(sut, rate_limit={"enabled": True, "rps": 2, "burst": 3})
    replies = [sut.get("/api/whoami") for _ in range(5)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429, 429]
    refused = replies[3]
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:observastack:sut:rate-limited"
    assert sut.control("GET", "/config/runtime").status_code == 200  # /config is never limited
    assert sut.get("/healthz").status_code == 200


def test_a_disabled_limit_lets_everything_through(sut: AsgiClient) -> None:
    configure(sut, rate_limit={"enabled": False, "rps": 0.5, "burst": 1})
    assert {sut.get("/api/whoami").status_code for _ in range(20)} == {200}


def test_the_bucket_is_shared_by_every_worker(tmp_path: Path) -> None:
    now = [100.0]
    first = SharedTokenBucket(tmp_path / "bucket", clock=lambda: now[0])
    second = SharedTokenBucket(tmp_path / "bucket", clock=lambda: now[0])
    assert first.take(1, 2) is None
    assert second.take(1, 2) is None
    wait = first.take(1, 2)
    assert wait == pytest.approx(1.0)
    now[0] += 0.5
    assert second.take(1, 2) == pytest.approx(0.5)
    now[0] += 0.5
    assert second.take(1, 2) is None
    assert first.take(10, 2) is None  # new settings: a full bucket
    first.close()
    second.close()


def test_retry_after_is_whole_seconds_never_zero() -> None:
    assert [retry_after(w) for w in (0.0, 0.01, 1.0, 1.2)] == ["1", "1", "1", "2"]


def test_a_request_over_the_timeout_is_504(sut: AsgiClient) -> None:
    configure(sut, request_timeout_ms=60)
    started = time.monotonic()
    response = sut.get("/api/io", params={"ms": 2000})
    assert response.status_code == 504
    assert 0.06 <= time.monotonic() - started < 0.5
    assert response.json()["type"] == "urn:observastack:sut:timeout"
    assert sut.get("/api/io", params={"ms": 1}).status_code == 200


def test_a_cpu_bound_request_stops_at_the_timeout(sut: AsgiClient) -> None:
    configure(sut, request_timeout_ms=50)
    started = time.monotonic()
    assert sut.get("/api/cpu", params={"ms": 1500}).status_code == 504
    assert time.monotonic() - started < 0.4


def test_latency_faults_count_against_the_timeout(sut: AsgiClient) -> None:
    configure(sut, request_timeout_ms=50)
    sut.control(
        "POST",
        "/config/faults",
        json={"kind": "latency", "duration_s": 10, "params": {"fixed_ms": 500}},
    )
    assert sut.get("/api/whoami").status_code == 504


def test_a_small_pool_queues_then_refuses(sut: AsgiClient) -> None:
    configure(sut, pool={"size": 1, "acquire_timeout_ms": 300})
    queued = sut.gather(*[("GET", "/api/io", {"params": {"ms": 100}})] * 2)
    assert [r.status_code for r in queued] == [200, 200]  # the second waited for the first
    configure(sut, pool={"size": 1, "acquire_timeout_ms": 50})
    refused = sut.gather(*[("GET", "/api/io", {"params": {"ms": 200}})] * 3)
    assert sorted(r.status_code for r in refused) == [200, 503, 503]
    problem = next(r for r in refused if r.status_code == 503)
    assert problem.headers["retry-after"] == "1"
    assert "pool size 1" in problem.json()["detail"]


def test_pool_hands_connections_over_in_order_and_survives_cancellation() -> None:
    async def scenario() -> list[str]:
        pool = SimulatedPool(1)
        events: list[str] = []
        await pool.acquire(1)

        async def waiter(name: str, timeout: float) -> None:
            try:
                await pool.acquire(timeout)
                events.append(f"{name} got it")
                pool.release()
            except PoolExhausted:
                events.append(f"{name} exhausted")

        slow = asyncio.create_task(waiter("a", 1))
        quick = asyncio.create_task(waiter("b", 0.01))
        cancelled = asyncio.create_task(waiter("c", 1))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        pool.release()
        await asyncio.gather(slow, quick, cancelled, return_exceptions=True)
        assert (pool.in_use, pool.waiting) == (0, 0)
        return events

    assert asyncio.run(scenario()) == ["b exhausted", "a got it"]


def test_pool_capacity_follows_held_connections() -> None:
    pool = SimulatedPool(4)
    pool.configure(4, held=3)
    assert pool.capacity == 1
    pool.configure(4, held=9)
    assert pool.capacity == 0
