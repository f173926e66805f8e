"""The application channel against the real stack: every knob changed through the secure-path,
its effect observed on the user-path and in /metrics; consistency across workers; concurrency;
validation; fault expiry across HUP and restart; worker-count reconciliation; schemathesis.

All traffic is bounded and goes to the stack's 127.0.0.1 endpoints. Every test starts and ends
with ``POST /config/state/reset?scope=all`` (defaults, no flags, no faults) so that the shared
session stack is left as it was found.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from pytest_observastack._agent import AgentClient
from pytest_observastack._config_client import ConfigClient
from pytest_observastack._stack import Stack
from pytest_observastack._waits import wait_until

PROBLEM = "application/problem+json"


# -- helpers ---------------------------------------------------------------------------------


class Scraper:
    """Samples from the obs-path, summed over the series that match the given labels."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def value(self, name: str, **labels: str) -> float:
        response = self.client.get("/metrics")
        response.raise_for_status()
        total = 0.0
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total


def fire(
    user: httpx.Client, path: str, count: int, *, workers: int = 8, **params: Any
) -> list[httpx.Response]:
    """``count`` requests on new upstream connections spread over the backend's workers."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: user.get(path, params=params or None), range(count)))


def converged(
    agent: AgentClient,
    workers: int,
    *,
    replacing: frozenset[int] = frozenset(),
    timeout: float = 45,
) -> Any:
    """Wait until the agent reports ``workers`` live workers, converged, none of ``replacing``."""
    return wait_until(
        agent.status,
        lambda s: (
            (s.raw.get("reconcile") or {}).get("converged") is True
            and s.raw["reconcile"]["live"] == workers
            and len(s.workers) == workers
            and not replacing & set(s.worker_pids)
        ),
        timeout=timeout,
        interval=0.2,
        what=f"the agent to converge on {workers} workers",
    )


@pytest.fixture
def control(secure_client: httpx.Client) -> ConfigClient:
    return ConfigClient(secure_client)


@pytest.fixture
def obs(stack: Any) -> Iterator[Scraper]:
    with httpx.Client(base_url=stack.url("obs"), timeout=10.0, trust_env=False) as client:
        yield Scraper(client)


@pytest.fixture
def fresh_user(stack: Any) -> Iterator[httpx.Client]:
    """A user-path client that opens a new connection per request (spreads over workers)."""
    with httpx.Client(
        base_url=stack.url("user"), timeout=30.0, trust_env=False, headers={"Connection": "close"}
    ) as client:
        yield client


@pytest.fixture(autouse=True)
def clean_app_channel(control: ConfigClient, agent: AgentClient) -> Iterator[None]:
    control.reset_state("all")
    yield
    control.reset_state("all")
    default = control.get_config()["desired_workers"]
    if len(agent.status().workers) != default:
        converged(agent, default)


# -- each knob, its effect on the user-path and in /metrics ------------------------------------


def test_rate_limit_answers_429_at_the_configured_rate(
    control: ConfigClient, fresh_user: httpx.Client, obs: Scraper
) -> None:
    limited_before = obs.value("observastack_control_rejections_total", reason="rate_limited")
    status_before = obs.value("observastack_http_requests_total", route="/api/whoami",
                              status="429")  # fmt: skip
    control.set_config(rate_limit={"enabled": True, "rps": 20, "burst": 5})
    assert obs.value("observastack_config_setting", setting="rate_limit_rps") == 20
    started = time.monotonic()
    replies: list[httpx.Response] = []
    with ThreadPoolExecutor(6) as pool:
        while time.monotonic() - started < 3.0:  # ~60-100 requests/s for 3 s, then stop
            replies += pool.map(lambda _: fresh_user.get("/api/whoami"), range(6))
            time.sleep(0.05)
    elapsed = time.monotonic() - started
    codes = Counter(r.status_code for r in replies)
    assert set(codes) == {200, 429}, codes
    allowed = 5 + 20 * elapsed
    assert 0.8 * allowed <= codes[200] <= 1.15 * allowed + 2, (codes, elapsed)
    refused = next(r for r in replies if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"] == PROBLEM
    assert obs.value("observastack_control_rejections_total", reason="rate_limited") == (
        limited_before + codes[429]
    )
    assert obs.value("observastack_http_requests_total", route="/api/whoami", status="429") == (
        status_before + codes[429]
    )


def test_request_timeout_answers_504_after_the_timeout(
    control: ConfigClient, user_client: httpx.Client, obs: Scraper
) -> None:
    slow_before = obs.value("observastack_http_request_duration_seconds_count", route="/api/io",
                            status="504")  # fmt: skip
    control.set_config(request_timeout_ms=300)
    started = time.monotonic()
    response = user_client.get("/api/io", params={"ms": 3000})
    took = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["type"] == "urn:observastack:sut:timeout"
    assert 0.3 <= took < 1.0
    assert user_client.get("/api/io", params={"ms": 20}).status_code == 200
    assert obs.value("observastack_http_request_duration_seconds_count", route="/api/io",
                     status="504") == slow_before + 1  # fmt: skip
    # In the 0.5 s bucket, not the 0.25 s one: the histogram shows the timeout.
    assert obs.value("observastack_http_request_duration_seconds_bucket", route="/api/io",
                     status="504", le="0.25") == 0  # fmt: skip


def test_an_exhausted_pool_queues_then_answers_503(
    control: ConfigClient, user_client: httpx.Client, fresh_user: httpx.Client, obs: Scraper
) -> None:
    before = obs.value("observastack_control_rejections_total", reason="pool_exhausted")
    control.set_config(pool={"size": 1, "acquire_timeout_ms": 150})
    replies = fire(fresh_user, "/api/io", 8, ms=800)
    codes = Counter(r.status_code for r in replies)
    assert 1 <= codes[200] <= 4, codes  # one connection in each worker
    assert codes[503] >= 4, codes
    refused = next(r for r in replies if r.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"] == "urn:observastack:sut:pool-exhausted"
    control.set_config(pool={"size": 64, "acquire_timeout_ms": 200})
    control.inject("pool_exhaustion", duration_s=10)
    assert obs.value("observastack_faults_active", kind="pool_exhaustion") == 1
    wait_until(lambda: obs.value("observastack_pool_connections_available"), lambda v: v == 0,
               timeout=1, interval=0.05, what="every worker's pool held (within 1 s)")  # fmt: skip
    started = time.monotonic()
    assert user_client.get("/api/io", params={"ms": 1}).status_code == 503
    assert time.monotonic() - started >= 0.2  # it queued for the acquire timeout first
    assert user_client.get("/api/whoami").status_code == 200  # no pool: unaffected
    assert obs.value("observastack_control_rejections_total", reason="pool_exhausted") >= (
        before + codes[503] + 1
    )


def test_latency_fault_shows_in_the_latency_histogram(
    control: ConfigClient, user_client: httpx.Client, obs: Scraper
) -> None:
    def bucket(le: str) -> float:
        return obs.value("observastack_http_request_duration_seconds_bucket",
                         route="/api/whoami", status="200", le=le)  # fmt: skip

    fast_before, slow_before = bucket("0.25"), bucket("0.5")
    fault = control.inject("latency", duration_s=30, fixed_ms=300, route="/api/whoami")
    assert obs.value("observastack_faults_active", kind="latency") == 1
    for _ in range(10):
        started = time.monotonic()
        response = user_client.get("/api/whoami")
        assert time.monotonic() - started >= 0.3
        assert response.headers["x-observastack-fault"] == fault.id
    assert bucket("0.25") == fast_before  # none of the ten was faster than 0.25 s
    assert bucket("0.5") == slow_before + 10
    assert user_client.get("/api/items").elapsed.total_seconds() < 0.25  # other routes: no


def test_error_fault_answers_its_status_at_about_its_probability(
    control: ConfigClient, fresh_user: httpx.Client, user_client: httpx.Client, obs: Scraper
) -> None:
    before = obs.value("observastack_fault_effects_total", kind="error", route="/api/whoami")
    fault = control.inject("error", duration_s=60, status=500, probability=0.3,
                           route="/api/whoami")  # fmt: skip
    replies = fire(fresh_user, "/api/whoami", 300)
    codes = Counter(r.status_code for r in replies)
    assert set(codes) == {200, 500}
    assert 0.2 <= codes[500] / 300 <= 0.4, codes
    assert all(r.headers["x-observastack-fault"] == fault.id for r in replies
               if r.status_code == 500)  # fmt: skip
    assert obs.value("observastack_fault_effects_total", kind="error", route="/api/whoami") == (
        before + codes[500]
    )
    control.clear_faults()
    control.inject("error", duration_s=60, status=503, first_n=5, route="/api/items")
    assert [user_client.get("/api/items").status_code for _ in range(8)] == [503] * 5 + [200] * 3


def test_cpu_and_memory_faults_run_and_clear(
    stack: Any, control: ConfigClient, obs: Scraper
) -> None:
    if not isinstance(stack, Stack):
        pytest.skip("looks at the backend's processes: local stack only")

    def hogs() -> list[str]:
        out = stack.exec("backend", "ps", "-eo", "rss=,args=").stdout
        return [line.strip() for line in out.splitlines() if "observastack-hog" in line]

    cpu = control.inject("cpu", duration_s=3, cores=1)
    memory = control.inject("memory", duration_s=3, mb=64)
    running = wait_until(hogs, lambda h: len(h) == 2, timeout=5, what="two hogs")
    held = next(line for line in running if "memory" in line)
    assert int(held.split()[0]) > 64 * 1024  # RSS in KiB
    assert obs.value("observastack_faults_active", kind="cpu") == 1
    assert obs.value("observastack_faults_active", kind="memory") == 1
    wait_until(hogs, lambda h: not h, timeout=max(cpu.expires_at, memory.expires_at)
               - time.time() + 1.5, what="the hogs to stop at expiry")  # fmt: skip
    assert time.time() >= cpu.expires_at - 0.2
    wait_until(lambda: obs.value("observastack_faults_active", kind="cpu"), lambda v: v == 0,
               timeout=2, what="the cpu gauge back at 0")  # fmt: skip


def test_flags_flip_behaviour(
    control: ConfigClient, user_client: httpx.Client, obs: Scraper
) -> None:
    control.seed(5)
    plain = user_client.get("/api/items")
    assert "x-observastack-path" not in plain.headers
    assert "x-cache" not in plain.headers
    assert plain.headers["x-downstream-calls"] == "1"
    control.set_flag("slow_path", True)
    slow = user_client.get("/api/items")
    assert slow.headers["x-observastack-path"] == "slow"
    assert slow.elapsed.total_seconds() >= 0.15
    control.set_flag("items_cache", True)
    assert {user_client.get("/api/items").headers["x-cache"] for _ in range(6)} >= {"HIT"}
    control.set_flag("extra_downstream_call", True)
    assert user_client.get("/api/items").headers["x-downstream-calls"] == "2"
    control.set_flag("items_order", "price")
    prices = [i["price_cents"] for i in user_client.get("/api/items").json()["items"]]
    assert prices == sorted(prices)
    assert obs.value("observastack_feature_flag", flag="items_order", variant="price") == 1
    assert obs.value("observastack_feature_flag", flag="slow_path", variant="true") == 1
    control.delete_flag("slow_path")
    assert "x-observastack-path" not in user_client.get("/api/items").headers


# -- consistency, concurrency, validation ------------------------------------------------------


def test_200_consecutive_requests_on_every_worker_see_an_acknowledged_change(
    control: ConfigClient, fresh_user: httpx.Client, agent: AgentClient
) -> None:
    workers = set(agent.status().worker_pids)
    flag = control.set_flag("items_order", "newest")  # acknowledged: every later request sees it
    config = control.set_config(request_timeout_ms=29_000)
    replies = fire(fresh_user, "/api/items", 200, limit=1)
    assert {r.status_code for r in replies} == {200}
    assert {r.json()["order"] for r in replies} == {"newest"}
    assert {int(r.headers["x-observastack-config-version"]) for r in replies} == {config.version}
    assert min(int(r.headers["x-observastack-flags-version"]) for r in replies) >= flag.version
    pids = {p.json()["pid"] for p in fire(fresh_user, "/api/whoami", 40)}
    assert pids == workers, "the requests should reach every worker"


def test_two_writers_with_the_same_etag_exactly_one_wins(
    secure_client: httpx.Client, control: ConfigClient
) -> None:
    before = control.get_config()
    bodies = [{"request_timeout_ms": 11_111}, {"desired_workers": 3}]
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(
            lambda body: secure_client.patch("/config/runtime", json=body,
                                             headers={"If-Match": before.etag}),
            bodies,
        ))  # fmt: skip
    assert sorted(r.status_code for r in replies) == [200, 412]
    winner = bodies[[r.status_code for r in replies].index(200)]
    after = control.get_config()
    assert after.version == before.version + 1
    for key, value in winner.items():
        assert after[key] == value
    loser = bodies[[r.status_code for r in replies].index(412)]
    for key in loser:
        assert after[key] == before[key]  # nothing half-applied


BAD_CHANGES: list[tuple[str, str, dict[str, Any], int]] = [
    ("wrong type", "PATCH /config/runtime", {"json": {"request_timeout_ms": "soon"}}, 422),
    ("negative duration", "PATCH /config/runtime", {"json": {"pool": {"acquire_timeout_ms": -1}}},
     422),
    ("unknown field", "PATCH /config/runtime", {"json": {"turbo": True}}, 422),
    ("null", "PATCH /config/runtime", {"json": {"desired_workers": None}}, 422),
    ("not JSON", "PATCH /config/runtime", {"content": b"{oops",
                                          "headers": {"Content-Type": "application/json"}}, 400),
    ("oversized body", "PATCH /config/runtime",
     {"content": b'{"x": "' + b"a" * 30_000 + b'"}',
      "headers": {"Content-Type": "application/json"}}, 413),
    ("missing If-Match", "PATCH /config/runtime", {"json": {"desired_workers": 3},
                                                   "if_match": None}, 428),
    ("fault: negative duration", "POST /config/faults",
     {"json": {"kind": "latency", "duration_s": -5, "params": {"fixed_ms": 1}}}, 422),
    ("fault: above the maximum", "POST /config/faults",
     {"json": {"kind": "latency", "duration_s": 3000, "params": {"fixed_ms": 1}}}, 422),
    ("fault: wrong type", "POST /config/faults",
     {"json": {"kind": "error", "duration_s": 5, "params": {"status": "teapot"}}}, 422),
    ("flag: unknown field", "PUT /config/flags/slow_path", {"json": {"value": True, "on": 1}},
     422),
]  # fmt: skip


@pytest.mark.parametrize(("what", "call", "kwargs", "status"), BAD_CHANGES,
                         ids=[case[0] for case in BAD_CHANGES])  # fmt: skip
def test_bad_input_is_a_4xx_problem_and_changes_nothing(
    secure_client: httpx.Client,
    control: ConfigClient,
    what: str,
    call: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    before = (control.get_config(), control.faults(), control.flags())
    method, path = call.split()
    kwargs = dict(kwargs)
    headers = dict(kwargs.pop("headers", {}))
    if_match = kwargs.pop("if_match", before[0].etag)
    if if_match is not None and path == "/config/runtime":
        headers["If-Match"] = if_match
    response = secure_client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status
    assert problem["detail"]
    if status == 422:
        assert problem["errors"]
        assert all(e["field"] for e in problem["errors"])
    assert (control.get_config(), control.faults(), control.flags()) == before


def test_a_body_over_the_gateway_limit_is_refused_too(secure_client: httpx.Client) -> None:
    response = secure_client.post("/config/faults", content=b"x" * 100_000,
                                  headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413


# -- faults never outlive their duration -------------------------------------------------------


def _expiry_seen(user: httpx.Client, fault_expires_at: float, route: str) -> float:
    """Poll ``route`` until the injected 503 stops; return how late that was (seconds)."""
    wait_until(
        lambda: user.get(route).status_code,
        lambda status: status != 503,
        timeout=fault_expires_at - time.time() + 5,
        interval=0.05,
        what="the fault to expire",
    )
    return time.time() - fault_expires_at


def test_a_fault_expires_on_time(control: ConfigClient, user_client: httpx.Client) -> None:
    fault = control.inject("error", duration_s=3, status=503, route="/api/whoami")
    assert user_client.get("/api/whoami").status_code == 503
    late = _expiry_seen(user_client, fault.expires_at, "/api/whoami")
    assert -0.1 <= late < 0.5
    assert control.fault(fault.id).state == "expired"
    assert control.faults() == []


def test_a_fault_survives_a_hup_and_still_expires_on_time(
    control: ConfigClient, user_client: httpx.Client, agent: AgentClient
) -> None:
    fault = control.inject("error", duration_s=8, status=503, route="/api/whoami")
    before = agent.status()
    agent.signal("HUP")
    wait_until(agent.status, lambda s: not set(s.worker_pids) & set(before.worker_pids)
               and len(s.workers) == len(before.workers), timeout=15,
               what="every worker replaced")  # fmt: skip
    assert time.time() < fault.expires_at - 1, "the reload took too long for this test"
    assert [f.id for f in control.faults()] == [fault.id]
    assert {user_client.get("/api/whoami").status_code for _ in range(10)} == {503}
    late = _expiry_seen(user_client, fault.expires_at, "/api/whoami")
    assert -0.1 <= late < 0.5


def test_a_fault_survives_a_worker_crash_and_still_expires_on_time(
    stack: Any, control: ConfigClient, user_client: httpx.Client, agent: AgentClient
) -> None:
    if not isinstance(stack, Stack):
        pytest.skip("kills a worker inside the backend container: local stack only")
    fault = control.inject("error", duration_s=6, status=503, route="/api/whoami")
    before = agent.status()
    victim = before.worker_pids[0]
    stack.exec("backend", "kill", "-KILL", str(victim))
    wait_until(agent.status, lambda s: victim not in s.worker_pids
               and len(s.workers) == len(before.workers), timeout=10,
               what=f"Gunicorn to replace the killed worker {victim}")  # fmt: skip
    assert time.time() < fault.expires_at - 1, "the replacement took too long for this test"
    assert {user_client.get("/api/whoami").status_code for _ in range(10)} == {503}
    late = _expiry_seen(user_client, fault.expires_at, "/api/whoami")
    assert -0.1 <= late < 0.5


def test_a_backend_restart_keeps_config_and_flags_and_drops_faults(
    stack: Any, control: ConfigClient, user_client: httpx.Client, agent: AgentClient
) -> None:
    if not isinstance(stack, Stack):
        pytest.skip("restarts the backend container: local stack only")
    control.set_config(request_timeout_ms=12_345)
    control.set_flag("items_order", "price")
    fault = control.inject("error", duration_s=300, status=503, route="/api/whoami")
    generation = agent.status().generation
    stack.restart("backend")
    agent.wait_rebound(generation, timeout=60)
    wait_until(lambda: user_client.get("/api/whoami").status_code, lambda s: s == 200,
               timeout=30, what="the user-path to answer after the restart")  # fmt: skip
    assert control.get_config()["request_timeout_ms"] == 12_345
    assert control.flags()["items_order"].value == "price"
    assert control.faults() == []
    assert "x-observastack-fault" not in user_client.get("/api/whoami").headers
    assert fault.id not in [f.id for f in control.faults()]


# -- worker count: desired state, converged by the agent ---------------------------------------


def test_the_agent_converges_the_desired_worker_count_and_again_after_a_hup(
    control: ConfigClient, agent: AgentClient, obs: Scraper
) -> None:
    control.set_config(desired_workers=3)
    status = converged(agent, 3)
    assert status.raw["reconcile"]["desired"] == 3
    assert obs.value("observastack_workers_desired") == 3
    wait_until(lambda: obs.value("observastack_workers_live"), lambda v: v == 3, timeout=10,
               what="3 live workers in /metrics")  # fmt: skip
    old = frozenset(status.worker_pids)
    agent.signal("HUP")  # Gunicorn goes back to -w (2) ...
    after = converged(agent, 3, replacing=old)  # ... and the agent brings it back to 3
    scaling = [s for s in after.signals if s.get("caller") == "agent:reconciler"]
    assert [s["signal"] for s in scaling][-1] == "SIGTTIN"
    control.set_config(desired_workers=2)
    converged(agent, 2)
    wait_until(lambda: obs.value("observastack_workers_live"), lambda v: v == 2, timeout=10,
               what="2 live workers in /metrics")  # fmt: skip


# -- the OpenAPI document, exercised through the secure-path -----------------------------------

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _bounded(case: Any) -> None:
    """Keep a generated case harmless: no blind overwrite of the config, short faults."""
    if case.headers and case.headers.get("If-Match", "").strip() == "*":
        case.headers["If-Match"] = '"config-0"'
    body = case.body
    duration = body.get("duration_s") if isinstance(body, dict) else None
    if isinstance(duration, int | float) and not isinstance(duration, bool) and duration > 1:
        body["duration_s"] = 1


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    secure_client: httpx.Client, control: ConfigClient
) -> None:
    document = control.openapi()
    schema = schemathesis.openapi.from_dict(document)
    checked: Counter[str] = Counter()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            _exercise(strategy, secure_client, checked)
    assert sum(checked.values()) >= 50, checked
    assert not [s for s in checked if s.startswith("5")], checked


def _exercise(strategy: Any, secure: httpx.Client, checked: Counter[str]) -> None:
    @settings(max_examples=4, deadline=None, derandomize=True, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=st.data())
    def run(data: Any) -> None:
        case = data.draw(strategy)
        _bounded(case)
        kwargs = case.as_transport_kwargs(base_url=str(secure.base_url).rstrip("/"))
        method, url = kwargs.pop("method"), kwargs.pop("url")
        for unused in ("allow_redirects", "verify"):
            kwargs.pop(unused, None)
        if "data" in kwargs and not isinstance(kwargs["data"], dict):
            kwargs["content"] = kwargs.pop("data")
        if not kwargs.get("cookies"):
            kwargs.pop("cookies", None)
        # Generated header values may hold latin-1 characters, which httpx refuses as str.
        headers = {k: v.encode("latin-1", "replace") for k, v in kwargs.pop("headers", {}).items()}
        response = secure.request(method, url, headers=headers, **kwargs)
        checked[str(response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    run()
