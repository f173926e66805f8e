"""Figures of the control plane on a running stack: recovery, HUP round trip, reload under load,
secure-path added latency, memory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from bench._figures import Figure, summarize
from pytest_observastack._agent import AgentClient
from pytest_observastack._compose import docker
from pytest_observastack._load import LoadRun
from pytest_observastack._stack import Stack
from pytest_observastack._tokens import RefreshingAuth


class Clients:
    """The secure / user clients and the agent client the figures share."""

    def __init__(self, stack: Stack) -> None:
        self.source = stack.token_source()
        self.secure = httpx.Client(base_url=stack.url("secure"), auth=RefreshingAuth(self.source),
                                   timeout=30, trust_env=False)  # fmt: skip
        self.user = httpx.Client(base_url=stack.url("user"), timeout=30, trust_env=False)
        self.agent = AgentClient(self.secure, self.user)

    def close(self) -> None:
        self.secure.close()
        self.user.close()
        self.source.close()


def _wait_agent_up_for(stack: Stack, seconds: float) -> None:
    started = docker("inspect", "--format", "{{.State.StartedAt}}", stack.container("agent"))
    up_since = datetime.strptime(started.stdout.strip()[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=UTC
    )
    wait = seconds - (time.time() - up_since.timestamp())
    if wait > 0:
        time.sleep(wait)  # a property of Docker's back-off clock, not a guess at readiness


def _rebound_converging(stack: Stack, clients: Clients, before: float) -> bool:
    """Wait for the agent's new generation as the plugin does: converge if Docker gave up on it.
    Returns whether a converge was needed."""
    deadline, converged = time.monotonic() + 60, False
    while time.monotonic() < deadline:
        try:
            if clients.agent.status().generation != before:
                return converged
        except Exception:
            pass
        if stack.converge(quiet=True):
            converged = True
        time.sleep(0.05)
    raise RuntimeError("the agent did not answer for a new generation within 60 s")


def recovery_after_restart(stack: Stack, clients: Clients, trials: int) -> Figure:
    samples, needed_converge = [], 0
    for _ in range(trials):
        # Start each trial from a steady state: Docker doubles the agent's restart delay for
        # every shared-fate death within 10 s of running, and resets it after 10 s up.
        _wait_agent_up_for(stack, 10.5)
        before = clients.agent.status().generation
        started = time.perf_counter()
        docker("restart", "--time", "10", stack.container("backend"), timeout=120)
        needed_converge += _rebound_converging(stack, clients, before)
        samples.append(time.perf_counter() - started)
        stack.wait_ready(60)
    s = summarize(samples)
    return Figure("control plane back after `restart backend`",
                  f"restart issued → agent answers for the new generation, {trials} trials "
                  f"({needed_converge} needed converge: Docker gave up on the agent)",
                  s["p95"], "s (p95)", "p95 ≤ 3 s", s["p95"] <= 3,
                  s | {"trials_needing_converge": needed_converge})  # fmt: skip


def hup_round_trip(clients: Clients, trials: int) -> Figure:
    samples = []
    for _ in range(trials):
        started = time.perf_counter()
        clients.agent.reload()  # returns once every worker is replaced and a new one serves
        samples.append(time.perf_counter() - started)
    s = summarize(samples)
    return Figure("HUP round trip", f"request → all workers replaced and serving, {trials} trials",
                  s["p95"], "s (p95)", "p95 ≤ 2 s", s["p95"] <= 2, s)  # fmt: skip


def reloads_under_load(stack: Stack, clients: Clients, reloads: int = 10) -> Figure:
    with LoadRun(stack, rate=200, duration_s=reloads * 1.2 + 4) as run:
        time.sleep(1.5)  # reach the rate before the first reload
        for _ in range(reloads):
            clients.agent.reload()
    r = run.result
    return Figure(f"failed requests during {reloads} HUPs at ~200 req/s",
                  f"loadgen (public side), {r.sent} requests at {r.achieved_rate}/s",
                  float(r.failed), "requests", "0", r.failed == 0,
                  {"sent": r.sent, "failed_by_reason": r.failed_by_reason,
                   "latency_s": r.latency_s})  # fmt: skip


def _latencies(get: Callable[[], httpx.Response], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = get()
        samples.append(time.perf_counter() - started)
        if response.status_code >= 500:
            raise RuntimeError(f"{response.request.url} answered {response.status_code}")
    return samples


def secure_path_added_latency(clients: Clients, n: int = 400) -> Figure:
    """Same small request through the secure-path (token checked) and the user-path."""
    clients.secure.get("/agent/healthz")
    secure = _latencies(lambda: clients.secure.get("/agent/healthz"), n)
    plain = _latencies(lambda: clients.user.get("/api/whoami"), n)
    s, p = summarize([x * 1000 for x in secure]), summarize([x * 1000 for x in plain])
    added = s["p50"] - p["p50"]
    return Figure("secure-path added latency (p50)",
                  f"GET /agent/healthz via secure-path vs GET /api/whoami via user-path, {n} each",
                  added, "ms", "report", None, {"secure_ms": s, "user_ms": p})  # fmt: skip


def _memory(stack: Stack) -> dict[str, float]:
    names = {stack.container(s): s for s in ("agent", "user-gateway", "secure-gateway",
                                              "obs-gateway", "backend")}  # fmt: skip
    out = docker("stats", "--no-stream", "--format", "{{json .}}", *names, timeout=60).stdout
    mem: dict[str, float] = {}
    for line in out.splitlines():
        row = json.loads(line)
        used = row["MemUsage"].split("/")[0].strip()
        number, unit = float(used.rstrip("KMGiB")), used.lstrip("0123456789.")
        scale = {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "B": 1 / 1024 / 1024}[unit]
        service = next(s for cid, s in names.items() if row["ID"].startswith(cid[:12]))
        mem[service] = round(number * scale, 1)
    return mem


def memory(stack: Stack) -> list[Figure]:
    at_rest = _memory(stack)
    with LoadRun(stack, rate=300, duration_s=8) as run:
        time.sleep(5)
        loaded = _memory(stack)
    run.wait()
    return [
        Figure(f"memory of {service}", "docker stats, at rest / under 300 req/s",
               at_rest[service], "MiB at rest", f"under load: {loaded[service]} MiB", None,
               {"at_rest_mib": at_rest[service], "under_load_mib": loaded[service]})
        for service in ("agent", "user-gateway", "secure-gateway", "obs-gateway")
    ]  # fmt: skip


def config_propagation(clients: Clients, trials: int = 10, probes: int = 24) -> Figure:
    """Acknowledged change → a round of concurrent user-path probes that all see its version."""
    from concurrent.futures import ThreadPoolExecutor

    from pytest_observastack._config_client import ConfigClient

    config = ConfigClient(clients.secure)
    samples, pids_seen = [], set()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for trial in range(trials):
            timeout_ms = 20_000 + trial  # any real change bumps the version
            version = config.set_config(request_timeout_ms=timeout_ms).version
            acked = time.perf_counter()
            while True:
                replies = list(pool.map(lambda _: clients.user.get("/api/io?ms=5"), range(probes)))
                seen = [int(r.headers.get("x-observastack-config-version", -1)) for r in replies]
                pids_seen |= {r.json()["pid"] for r in replies}
                if min(seen) >= version:
                    samples.append(time.perf_counter() - acked)
                    break
                if time.perf_counter() - acked > 10:
                    raise RuntimeError(f"version {version} not seen everywhere after 10 s: {seen}")
    s = summarize(samples)
    return Figure("config change visible in all workers",
                  f"ack → {probes} concurrent probes all at the new version, {trials} trials",
                  s["max"], "s (max)", "≤ 1 s", s["max"] <= 1,
                  s | {"worker_pids_probed": len(pids_seen)})  # fmt: skip
