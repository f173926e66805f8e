"""Fixtures for the agent's unit tests: a real Gunicorn master, a fake token validator, and an
in-process ASGI client for the agent's Sanic app. No Docker."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.api import create_app
from agent.discovery import Discovery, ProcessId
from agent.runtime import AgentCore
from pytest_observastack._waits import wait_until
from tests.asgi_client import AsgiClient

HERE = Path(__file__).parent
TEST_TOKEN = "test-token"
FORBIDDEN_TOKEN = "forbidden-token"
_app_names = itertools.count()


@dataclass
class Gunicorn:
    """A real Gunicorn master with the tiny ASGI app, in its own process group."""

    proc: subprocess.Popen[bytes]
    log: Path
    name: str
    discovery: Discovery

    @property
    def master_title(self) -> str:
        """A pattern for this master only: other masters may run on the same host."""
        return master_title(self.name)

    @property
    def master(self) -> ProcessId:
        master, _ = self.discovery.find_master()
        return master

    def workers(self) -> tuple[ProcessId, ...]:
        return self.discovery.workers(self.master)

    def wait_workers(self, done: Any, what: str, timeout: float = 10.0) -> tuple[ProcessId, ...]:
        return wait_until(
            lambda: self.discovery.workers(self.master),
            done,
            timeout=timeout,
            what=what,
            interval=0.02,
        )


def master_title(name: str) -> str:
    return rf"^gunicorn: master \[{re.escape(name)}\]$"


def start_gunicorn(tmp_path: Path, workers: int = 2) -> Gunicorn:
    log = tmp_path / "gunicorn.log"
    name = f"agent-test-{uuid.uuid4().hex[:12]}"
    argv = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "asgi",
        "-w", str(workers),
        "--bind", "127.0.0.1:0",
        "--no-control-socket",
        "--graceful-timeout", "2",
        "--name", name,
        "_tiny_app:app",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=HERE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    gunicorn = Gunicorn(proc, log, name, Discovery(master_title(name)))

    def ready() -> tuple[int, int]:
        master = gunicorn.master
        return master.pid, len(gunicorn.discovery.workers(master))

    try:
        wait_until(
            ready,
            lambda seen: seen == (proc.pid, workers),
            timeout=15,
            what=f"gunicorn master {proc.pid} with {workers} workers",
            interval=0.02,
        )
    except Exception:
        stop_gunicorn(gunicorn)
        raise
    return gunicorn


def stop_gunicorn(gunicorn: Gunicorn) -> None:
    """KILL the process group this test started (master and workers, orphaned or not)."""
    pgid = gunicorn.proc.pid  # start_new_session: the master leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    gunicorn.proc.wait(timeout=10)
    wait_until(
        lambda: [p.pid for p in psutil.process_iter() if _in_group(p, pgid)],
        lambda left: not left,
        timeout=10,
        what=f"process group {pgid} to be empty",
        interval=0.02,
    )


def _in_group(proc: psutil.Process, pgid: int) -> bool:
    try:
        return os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.Error):
        return False


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Gunicorn]:
    """A fresh master with 2 workers, for tests that change it."""
    g = start_gunicorn(tmp_path)
    yield g
    stop_gunicorn(g)


@pytest.fixture(scope="module")
def shared_gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    """One master per module, for tests that only read it (or send USR1)."""
    g = start_gunicorn(tmp_path_factory.mktemp("gunicorn"))
    yield g
    stop_gunicorn(g)


@dataclass(frozen=True)
class FakeDecision:
    ok: bool
    status: int
    subject: str | None
    reason: str

    def www_authenticate(self) -> str | None:
        if self.ok:
            return None
        return f'Bearer error="invalid_token", error_description="{self.reason}"'


@dataclass
class FakeValidator:
    """Accepts ``Bearer test-token`` as caller ``test-caller``; forbids ``forbidden-token``."""

    calls: list[tuple[list[str], str]] = field(default_factory=list)

    def check_authorization(self, authorization: list[str], /, *, path: str) -> FakeDecision:
        self.calls.append((authorization, path))
        if authorization == [f"Bearer {TEST_TOKEN}"]:
            return FakeDecision(True, 200, "test-caller", "ok")
        if authorization == [f"Bearer {FORBIDDEN_TOKEN}"]:
            return FakeDecision(False, 403, "someone-else", "subject not allowed")
        if not authorization:
            return FakeDecision(False, 401, None, "missing bearer token")
        return FakeDecision(False, 401, None, "invalid token")


@pytest.fixture
def validator() -> FakeValidator:
    return FakeValidator()


@pytest.fixture
def serve(validator: FakeValidator) -> Iterator[Callable[[AgentCore], AsgiClient]]:
    """Factory: the agent's app for a core, with the fake validator, as a synchronous client."""
    clients: list[AsgiClient] = []

    def make(core: AgentCore) -> AsgiClient:
        app = create_app(core, validator, name=f"agent-test-{next(_app_names)}")
        client = AsgiClient(app, base_url="http://agent")
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TEST_TOKEN}"}


@pytest.fixture
def forbidden_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {FORBIDDEN_TOKEN}"}
