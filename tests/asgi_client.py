"""Run a Sanic app in-process over ASGI (with its lifespan) and call it synchronously.

Shared by the SUT's and the agent's unit tests (a plain module, imported by name).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sanic import Sanic


class AsgiClient:
    """One event loop, one app: ``request`` blocks until the app has answered."""

    def __init__(self, app: Sanic[Any, Any], *, base_url: str, timeout: float = 30) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self._lifespan = self.loop.create_task(app(scope, self._inbox.get, self._outbox.put))
        self._lifecycle("lifespan.startup")
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=timeout
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

    def gather(self, *calls: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
        """Send several requests concurrently (one event loop, like one worker)."""

        async def run() -> list[httpx.Response]:
            return list(
                await asyncio.gather(*(self.client.request(m, p, **kw) for m, p, kw in calls))
            )

        return self.loop.run_until_complete(run())

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.run_until_complete(self.client.aclose())
        self._lifecycle("lifespan.shutdown")
        self.loop.run_until_complete(self._lifespan)
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
