"""Fixtures for the SUT's unit tests: the Sanic app in-process over ASGI, with its own data and
runtime directories and an injectable wall clock. No Docker, no Gunicorn."""

from __future__ import annotations

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
from tests.asgi_client import AsgiClient as BaseAsgiClient

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


class AsgiClient(BaseAsgiClient):
    """The SUT app in-process, plus what the secure-gateway and the 200 ms tick would do."""

    def __init__(self, app: Sanic[Any, Any]) -> None:
        super().__init__(app, base_url="http://sut")

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A /config request as the secure-gateway forwards it (verified subject header)."""
        headers = {**SUBJECT, **kwargs.pop("headers", {})}
        return self.request(method, path, headers=headers, **kwargs)

    def tick(self) -> None:
        self.app.ctx.control.tick()


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
