"""ASGI adapter between Sanic and Gunicorn's native ``asgi`` worker.

Sanic hands ``http.response.start`` headers over as a one-shot generator; Gunicorn 27's worker
reads that generator once to scan it and then builds the response from the exhausted generator,
so every header Sanic set (Content-Type, Set-Cookie, Location, ...) is lost (LIBRARY-FACTS §1).
Materialising the headers into a list before they reach the worker fixes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ListHeaders"]


class ListHeaders:
    """Wrap an ASGI app so that response-start headers are always a list."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_listed_headers(message: Message) -> None:
            if message.get("type") == "http.response.start" and not isinstance(
                message.get("headers"), list
            ):
                message = dict(message, headers=list(message.get("headers", ())))
            await send(message)

        await self.app(scope, receive, send_with_listed_headers)
