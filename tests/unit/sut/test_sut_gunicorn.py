"""The SUT under a real Gunicorn master (2 workers, multi-process metrics), with the agent's
reconciler bound to it: what the in-process tests cannot show. No Docker; a few seconds."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.audit import SignalRecord, utc_now
from agent.discovery import Discovery
from agent.reconcile import Reconciler, ReconcileSettings, for_core
from agent.runtime import AgentCore
from pytest_observastack._waits import wait_until

from .conftest import SUBJECT

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Backend:
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    discovery: Discovery
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=SUBJECT, timeout=10, trust_env=False)

    def workers(self) -> int:
        master, _ = self.discovery.find_master()
        return len(self.discovery.workers(master))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    tmp = tmp_path_factory.mktemp("gunicorn-sut")
    name = f"sut-test-{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prom"),
        "OBSERVASTACK_BIND": f"127.0.0.1:{port}",
        "OBSERVASTACK_WORKERS": "2",
        "OBSERVASTACK_GRACEFUL_TIMEOUT_S": "2",
        "OBSERVASTACK_DATA_DIR": str(tmp / "data"),
        "OBSERVASTACK_RUNTIME_DIR": str(tmp / "runtime"),
    }
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:sut.gunicorn_conf", "--name", name,
            "--pid", str(tmp / "gunicorn.pid"), "sut.app:create_asgi()"]  # fmt: skip
    log = tmp / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    found = Backend(proc, f"http://127.0.0.1:{port}", tmp / "data",
                    Discovery(rf"^gunicorn: master \[{re.escape(name)}\]$"), log)  # fmt: skip
    try:
        wait_until(
            lambda: httpx.get(found.url + "/healthz", trust_env=False).status_code,
            lambda status: status == 200 and found.workers() == 2,
            timeout=20,
            what=f"the SUT under gunicorn on {found.url}",
            interval=0.05,
        )
        yield found
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def metric(client: httpx.Client, name: str) -> list[float]:
    text = client.get("/metrics").text
    return [
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    ]


def spread_whoami(url: str, count: int) -> list[httpx.Response]:
    """``count`` requests, each on a new connection, so that every worker gets some."""
    with (
        httpx.Client(base_url=url, trust_env=False, headers={"Connection": "close"}) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        return list(pool.map(lambda _: client.get("/api/whoami"), range(count)))


def test_an_acknowledged_change_is_seen_by_every_worker_on_the_next_request(
    backend: Backend,
) -> None:
    with backend.client() as client:
        ack = client.put("/config/flags/custom.marker", json={"value": True})
        assert ack.status_code == 201
        version = int(client.get("/config/flags").json()["version"])
        replies = spread_whoami(backend.url, 200)
        client.delete("/config/flags/custom.marker")
    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["pid"] for r in replies}) == 2
    assert all(int(r.headers["x-observastack-flags-version"]) >= version for r in replies)


def test_the_reconciler_converges_the_worker_count_and_again_after_a_hup(
    backend: Backend,
) -> None:
    master, title = backend.discovery.find_master()
    core = AgentCore(backend.discovery, master, title)
    settings = ReconcileSettings(
        desired_file=str(backend.data_dir / "desired-workers.json"), settle_s=0.3
    )
    reconciler: Reconciler = for_core(core, settings)

    def converged_at(count: int, timeout: float = 20) -> dict[str, Any]:
        return wait_until(
            reconciler.step,
            lambda s: s["converged"] and s["live"] == count and backend.workers() == count,
            timeout=timeout,
            what=f"{count} workers, converged",
            interval=0.1,
        )

    with backend.client() as client:
        etag = client.get("/config/runtime").headers["etag"]
        changed = client.patch("/config/runtime", json={"desired_workers": 3},
                               headers={"If-Match": etag})  # fmt: skip
        assert changed.status_code == 200
        converged_at(3)
        wait_until(lambda: metric(client, "observastack_workers_live"), lambda v: v == [3.0],
                   timeout=10, what="3 live workers in /metrics")  # fmt: skip
        with core.open_target() as target:
            target.send(signal.SIGHUP)
        core.history.add(SignalRecord(at=utc_now(), caller="test", requested="HUP",
                                      signal="SIGHUP", target_pid=master.pid,
                                      target_create_time=master.create_time,
                                      result="delivered", status=202, detail="sent"))  # fmt: skip
        status = converged_at(3)
        assert status["actions"] >= 2  # the first TTIN, and one more after the HUP
        assert metric(client, "observastack_workers_desired") == [3.0]  # one series, no stale pids
        etag = client.get("/config/runtime").headers["etag"]
        client.patch("/config/runtime", json={"desired_workers": 2}, headers={"If-Match": etag})
        converged_at(2)
        wait_until(lambda: metric(client, "observastack_workers_live"), lambda v: v == [2.0],
                   timeout=10, what="2 live workers in /metrics")  # fmt: skip
    signals = [r.signal for r in core.history.snapshot() if r.caller == "agent:reconciler"]
    assert signals[0] == "SIGTTIN"
    assert signals[-1] == "SIGTTOU"


def test_faults_survive_a_hup_and_still_expire_on_time(backend: Backend) -> None:
    with backend.client() as client:
        fault = client.post(
            "/config/faults",
            json={"kind": "error", "duration_s": 2, "params": {"status": 503,
                                                                "route": "/api/whoami"}},
        ).json()  # fmt: skip
        master, _ = backend.discovery.find_master()
        old = {w.pid for w in backend.discovery.workers(master)}
        os.kill(master.pid, signal.SIGHUP)
        wait_until(lambda: {w.pid for w in backend.discovery.workers(master)},
                   lambda now: len(now - old) == 2, timeout=5,
                   what="two new workers after HUP")  # fmt: skip
        time.sleep(0.3)  # let the new workers start serving
        assert time.time() < fault["expires_at"] - 0.5, "the HUP took too long for this test"
        assert {r.status_code for r in spread_whoami(backend.url, 20)} == {503}
        ended = wait_until(
            lambda: client.get("/api/whoami").status_code,
            lambda status: status == 200,
            timeout=5,
            interval=0.02,
            what="the fault to expire",
        )
        assert ended == 200
        late = time.time() - fault["expires_at"]
        assert 0 <= late < 0.5
        assert metric(client, "observastack_faults_active")  # present, every kind, one series each
        counts = metric(client, "observastack_fault_effects_total")
        assert sum(counts) >= 20
