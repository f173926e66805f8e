"""Fixtures for the SUT's unit tests: the Sanic app in-process over ASGI, with its own data and
runtime directories and an injectable wall clock. No Docker, no Gunicorn."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sanic import Sanic

from sut.app import create_app
from sut.config import SutConfig

SUBJECT = {"X-Observastack-Subject": "instructor@example"}
_names = itertools.count()


@dataclass
class FakeClock:
    """Wall clock for fault expiry: starts at the real time, moves only when told."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class AsgiClient:
    """Runs a Sanic app in-process (ASGI, with its lifespan) and calls it synchronously."""

    def __init__(self, app: Sanic[Any, Any]) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self._lifespan = self.loop.create_task(app(scope, self._inbox.get, self._outbox.put))
        self._lifecycle("lifespan.startup")
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sut", timeout=30
        )

    def _lifecycle(self, kind: str) -> None:
        async def step() -> dict[str, Any]:
            await self._inbox.put({"type": kind})
            return await asyncio.wait_for(self._outbox.get(), 10)

        reply = self.loop.run_until_complete(step())
        assert reply["type"] == f"{kind}.complete", reply

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A /config request as the secure-gateway forwards it (verified subject header)."""
        headers = {**SUBJECT, **kwargs.pop("headers", {})}
        return self.request(method, path, headers=headers, **kwargs)

    def gather(self, *calls: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
        """Send several requests concurrently (one event loop, like one worker)."""

        async def run() -> list[httpx.Response]:
            return list(
                await asyncio.gather(*(self.client.request(m, p, **kw) for m, p, kw in calls))
            )

        return self.loop.run_until_complete(run())

    def tick(self) -> None:
        self.app.ctx.control.tick()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.run_until_complete(self.client.aclose())
        self._lifecycle("lifespan.shutdown")
        self.loop.run_until_complete(self._lifespan)
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


def sut_config(tmp_path: Path, **overrides: Any) -> SutConfig:
    values: dict[str, Any] = {
        "bind": "127.0.0.1:0",
        "workers": 2,
        "graceful_timeout_s": 2,
        "data_dir": tmp_path / "data",
        "metrics_dir": None,
        "access_log": None,
        "runtime_dir": tmp_path / "runtime",
        "fault_cpu_max_cores": 2,
        "fault_memory_max_mb": 64,
    }
    return SutConfig(**{**values, **overrides})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def serve(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., AsgiClient]]:
    """Factory: an app on ``tmp_path`` (the same directories each call: like several workers)."""
    clients: list[AsgiClient] = []

    def make(**overrides: Any) -> AsgiClient:
        app = create_app(sut_config(tmp_path, **overrides), name=f"sut-{next(_names)}", clock=clock)
        client = AsgiClient(app)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def sut(serve: Callable[..., AsgiClient]) -> AsgiClient:
    return serve()
