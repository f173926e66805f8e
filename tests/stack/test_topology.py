"""The stack stands up for real: health, path allow-lists, metrics, the header fix, no socket."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytest_observastack._compose import docker
from pytest_observastack._stack import ENDPOINTS, SERVICES, Stack


def test_every_service_runs_and_is_healthy(stack: Stack) -> None:
    # The session stack may just have come back from a chaos test: Docker's health status lags
    # a running service by up to one healthcheck interval, so wait (with a deadline) first.
    stack.wait_ready(60)
    states = {s.service: s for s in stack.status()}
    assert set(states) == set(SERVICES)
    not_ready = {n: (s.state, s.health) for n, s in states.items() if not s.ready}
    assert not not_ready


def test_user_path_serves_the_api(user_client: httpx.Client) -> None:
    created = user_client.post("/api/items", json={"name": "widget", "price_cents": 250})
    assert created.status_code == 201
    listed = user_client.get("/api/items")
    assert listed.status_code == 200
    assert "widget" in [item["name"] for item in listed.json()["items"]]
    assert user_client.get(created.headers["location"]).json()["name"] == "widget"


@pytest.mark.parametrize(
    "path", ["/metrics", "/config/runtime", "/agent/status", "/healthz", "/", "/apix", "/api"]
)
def test_user_path_refuses_everything_but_api(user_client: httpx.Client, path: str) -> None:
    response = user_client.get(path)
    assert response.status_code == 404
    assert response.json()["detail"] == "the user-path serves /api/* only"


@pytest.mark.parametrize(
    "raw_path",
    ["/api/../metrics", "/api/%2e%2e/config/runtime", "/api/..%2fmetrics", "/api//../healthz",
     "/api/./../agent/status"],
)  # fmt: skip
def test_user_path_refuses_smuggled_paths(stack: Stack, raw_path: str) -> None:
    url = httpx.URL(stack.url("user")).copy_with(raw_path=raw_path.encode())
    response = httpx.get(url, trust_env=False)
    assert response.status_code in (400, 404)
    assert b"observastack_http_requests" not in response.content


def test_api_validation_errors_are_problem_documents(user_client: httpx.Client) -> None:
    response = user_client.post("/api/items", json={"name": "", "price_cents": -1, "x": 1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert len(response.json()["errors"]) == 3
    assert user_client.post("/api/items", content=b"{not json").status_code == 400


class TestHeaderFix:
    """Gunicorn's native asgi worker drops Sanic's headers unless sut.asgi.ListHeaders wraps it."""

    def test_content_type_survives(self, user_client: httpx.Client) -> None:
        assert user_client.get("/api/items").headers["content-type"] == "application/json"

    def test_set_cookie_survives(self, user_client: httpx.Client) -> None:
        response = user_client.post("/api/session")
        assert response.status_code == 201
        assert "sid=" in response.headers["set-cookie"]
        assert "HttpOnly" in response.headers["set-cookie"]

    def test_location_survives_on_redirect(self, user_client: httpx.Client) -> None:
        response = user_client.get("/api/legacy-items", follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] == "/api/items"


def _requests_total(text: str, route: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "observastack_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("route") == route:
                    total += sample.value
    return total


def test_obs_path_serves_metrics_aggregated_over_all_workers(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url("obs"), trust_env=False) as obs:
        _check_aggregation(stack, obs)


def _check_aggregation(stack: Stack, obs: httpx.Client) -> None:
    before = _requests_total(obs.get("/metrics").text, "/api/io")
    # Concurrent slow requests make the gateway open several upstream connections, which the
    # kernel hands to different workers.
    with (
        httpx.Client(base_url=stack.url("user"), trust_env=False) as user,
        ThreadPoolExecutor(max_workers=12) as pool,
    ):
        replies = list(pool.map(lambda _: user.get("/api/io", params={"ms": 30}), range(60)))
    assert [r.status_code for r in replies] == [200] * 60
    assert len({r.json()["pid"] for r in replies}) >= 2, "requests should reach several workers"
    scrapes = [obs.get("/metrics") for _ in range(8)]
    assert all(r.status_code == 200 for r in scrapes)
    assert scrapes[0].headers["content-type"].startswith("text/plain")
    # Whichever worker answered the scrape, it reports every worker's count.
    assert {_requests_total(r.text, "/api/io") - before for r in scrapes} == {60.0}
    live = [
        s.value
        for f in text_string_to_metric_families(scrapes[0].text)
        if f.name == "observastack_workers_live"
        for s in f.samples
    ]
    assert live == [2.0]


@pytest.mark.parametrize("path", ["/", "/api/items", "/config/runtime", "/agent/status", "/metric"])
def test_obs_path_serves_only_metrics(stack: Stack, path: str) -> None:
    assert httpx.get(stack.url("obs") + path, trust_env=False).status_code == 404


def test_obs_path_refuses_writes(stack: Stack) -> None:
    assert httpx.post(stack.url("obs") + "/metrics", trust_env=False).status_code == 403


@pytest.mark.parametrize(
    "path", ["/config/runtime", "/agent/status", "/", "/metrics", "/api/items"]
)
def test_secure_path_answers_401_without_token(stack: Stack, path: str) -> None:
    response = httpx.get(stack.url("secure") + path, trust_env=False)
    assert response.status_code == 401
    (challenge,) = response.headers.get_list("www-authenticate")
    assert challenge.startswith('Bearer error="invalid_token"')
    assert response.headers["content-type"] == "application/problem+json"


def test_no_container_mounts_the_docker_socket(stack: Stack) -> None:
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}")
    inspected = json.loads(docker("inspect", *ids.stdout.split()).stdout)
    assert len(inspected) == len(SERVICES)
    for container in inspected:
        sources = [m.get("Source", "") for m in container["Mounts"]]
        binds = container["HostConfig"].get("Binds") or []
        assert not [s for s in sources + binds if "docker.sock" in s], container["Name"]


def test_control_plane_ports_bind_to_loopback_only(stack: Stack) -> None:
    published = {s.service: s.publishers for s in stack.status()}
    for service in ("secure-gateway", "obs-gateway", "vault"):
        assert published[service], f"{service} publishes nothing"
        assert {ip for ip, _, _ in published[service]} == {"127.0.0.1"}, service
    for service in ("backend", "agent", "loadgen"):
        assert published[service] == (), f"{service} must not publish ports"
    assert set(stack.endpoints()) == set(ENDPOINTS)


def test_agent_is_least_privileged(stack: Stack) -> None:
    (agent,) = json.loads(docker("inspect", stack.container("agent")).stdout)
    host = agent["HostConfig"]
    assert host["PidMode"] == f"container:{stack.container('backend')}"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"]
    assert host["Memory"]
    assert agent["Config"]["User"] == "observa"
    assert set(agent["NetworkSettings"]["Networks"]) == {f"{stack.project}_control"}
