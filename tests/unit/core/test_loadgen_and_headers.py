"""The load plan's bounds, the probe's target parsing, and the header fix for Gunicorn's worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from loadgen.load import LoadPlan, _percentile
from sut.asgi import ListHeaders


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rate": 0}, "rate"), ({"rate": 10_000}, "rate"), ({"duration_s": 0}, "duration"),
     ({"duration_s": 601}, "duration"), ({"max_requests": 0}, "max_requests")],
)  # fmt: skip
def test_load_plans_are_bounded(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"url": "http://user-gateway:8080/api/whoami", "rate": 10,
                            "duration_s": 1}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        LoadPlan(**(base | kwargs))


def test_percentiles() -> None:
    values = [float(i) for i in range(1, 101)]
    assert _percentile(values, 0.5) in (50.0, 51.0)
    assert _percentile(values, 0.99) == 99.0
    assert _percentile([], 0.5) is None


def test_list_headers_materialises_a_one_shot_generator() -> None:
    sent: list[dict[str, Any]] = []

    def one_shot() -> Iterator[tuple[bytes, bytes]]:
        yield (b"content-type", b"application/json")
        yield (b"set-cookie", b"sid=1")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": one_shot()})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request"}

    asyncio.run(ListHeaders(app)({"type": "http"}, receive, send))
    headers = sent[0]["headers"]
    assert isinstance(headers, list)
    # A consumer that reads the headers twice (as Gunicorn's worker does) sees them both times.
    assert list(headers) == list(headers) == [(b"content-type", b"application/json"),
                                              (b"set-cookie", b"sid=1")]  # fmt: skip
    assert sent[1]["body"] == b"{}"
