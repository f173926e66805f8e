"""State operations, several workers sharing one data directory, and the metrics they export."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import AsgiClient


def metric(sut: AsgiClient, name: str, **labels: str) -> float:
    text = sut.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_seed_replaces_the_items_with_n_generated_ones(sut: AsgiClient) -> None:
    sut.request("POST", "/api/items", json={"name": "mine", "price_cents": 5})
    response = sut.control("POST", "/config/state/seed", params={"items": 25})
    assert response.status_code == 200
    assert response.json()["items"] == 25
    listed = sut.get("/api/items", params={"limit": 1000}).json()
    assert listed["count"] == 25
    assert [i["id"] for i in listed["items"]] == list(range(1, 26))


def test_reset_empties_the_items(sut: AsgiClient) -> None:
    sut.control("POST", "/config/state/seed", params={"items": 3})
    generation = sut.control("POST", "/config/state/reset").json()["data_generation"]
    assert sut.get("/api/items").json()["count"] == 0
    assert sut.control("POST", "/config/state/reset").json()["data_generation"] == generation + 1


def test_reset_all_restores_defaults_and_clears_flags_and_faults(sut: AsgiClient) -> None:
    etag = sut.control("GET", "/config/runtime").headers["etag"]
    sut.control("PATCH", "/config/runtime", json={"desired_workers": 5}, headers={"If-Match": etag})
    sut.control("PUT", "/config/flags/slow_path", json={"value": True})
    fault = sut.control(
        "POST",
        "/config/faults",
        json={"kind": "latency", "duration_s": 9, "params": {"fixed_ms": 1}},
    ).json()
    body = sut.control("POST", "/config/state/reset", params={"scope": "all"}).json()
    assert body["deleted_flags"] == ["slow_path"]
    assert body["cleared_faults"] == [fault["id"]]
    assert body["config_changes"] == {"desired_workers": {"from": 5, "to": 2}}
    assert sut.control("GET", "/config/runtime").json()["desired_workers"] == 2


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/config/state/seed", {"items": "many"}, "items"),
        ("/config/state/seed", {"items": "-1"}, "items"),
        ("/config/state/seed", {"items": "10001"}, "items"),
        ("/config/state/reset", {"scope": "everything"}, "scope"),
    ],
)
def test_bad_state_parameters_are_422(
    sut: AsgiClient, path: str, params: dict[str, str], field: str
) -> None:
    sut.control("POST", "/config/state/seed", params={"items": 2})
    response = sut.control("POST", path, params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
    assert sut.get("/api/items").json()["count"] == 2


def test_a_change_through_one_worker_is_in_effect_in_the_others_at_once(serve: Any) -> None:
    """Three apps on one data directory behave like three Gunicorn workers."""
    workers = [serve() for _ in range(3)]
    etag = workers[0].control("GET", "/config/runtime").headers["etag"]
    workers[0].control(
        "PATCH", "/config/runtime", json={"request_timeout_ms": 40}, headers={"If-Match": etag}
    )
    workers[1].control("PUT", "/config/flags/slow_path", json={"value": True})
    workers[2].control(
        "POST",
        "/config/faults",
        json={"kind": "error", "duration_s": 30, "params": {"status": 599, "route": "/api/cpu"}},
    )
    for worker in workers:
        response = worker.get("/api/whoami")
        assert response.headers["x-observastack-config-version"] == "2"
        assert response.headers["x-observastack-flags-version"] == "1"
        assert worker.get("/api/io", params={"ms": 500}).status_code == 504
        assert worker.get("/api/cpu").status_code == 599


def test_only_one_worker_runs_the_hogs(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    def start(self: Any, fault: Any, now: float) -> list[Any]:
        started.append(fault.id)
        return []

    monkeypatch.setattr("sut.control.pressure.PressureOwner._start", start)
    workers = [serve() for _ in range(3)]
    fault = (
        workers[1].control("POST", "/config/faults", json={"kind": "cpu", "duration_s": 30}).json()
    )
    for worker in workers:
        worker.tick()
    assert started == [fault["id"]]
    owners = [w.app.ctx.control.pressure.owner for w in workers]
    assert owners.count(True) == 1
    owner = owners.index(True)
    workers[owner].close()  # the owner exits (HUP, crash): another takes over on its tick
    for index, worker in enumerate(workers):
        if index != owner:
            worker.tick()
    assert started == [fault["id"], fault["id"]]


def test_metrics_show_config_flags_faults_and_the_pool(sut: AsgiClient) -> None:
    etag = sut.control("GET", "/config/runtime").headers["etag"]
    sut.control(
        "PATCH",
        "/config/runtime",
        json={"desired_workers": 3, "rate_limit": {"enabled": True, "rps": 50}},
        headers={"If-Match": etag},
    )
    sut.control("PUT", "/config/flags/items_order", json={"value": "price"})
    sut.control("POST", "/config/faults", json={"kind": "pool_exhaustion", "duration_s": 30})
    assert metric(sut, "observastack_config_version") == 2
    assert metric(sut, "observastack_workers_desired") == 3
    assert metric(sut, "observastack_config_setting", setting="rate_limit_rps") == 50
    assert metric(sut, "observastack_feature_flag", flag="items_order", variant="price") == 1
    assert metric(sut, "observastack_feature_flag", flag="items_order", variant="id") == 0
    assert metric(sut, "observastack_feature_flag", flag="slow_path", variant="false") == 1
    assert metric(sut, "observastack_faults_active", kind="pool_exhaustion") == 1
    assert metric(sut, "observastack_faults_active", kind="cpu") == 0
    assert metric(sut, "observastack_pool_connections_available") == 0
    sut.control("DELETE", "/config/faults")
    assert metric(sut, "observastack_faults_active", kind="pool_exhaustion") == 0


def test_metrics_count_refusals_and_fault_effects(sut: AsgiClient) -> None:
    def count(name: str, **labels: str) -> float:
        try:
            return metric(sut, name, **labels)
        except AssertionError:
            return 0.0

    limited = count("observastack_control_rejections_total", reason="rate_limited",
                    route="/api/whoami")  # fmt: skip
    status = count("observastack_http_requests_total", route="/api/whoami", status="429",
                   method="GET")  # fmt: skip
    effects = count("observastack_fault_effects_total", kind="error", route="/api/whoami")
    etag = sut.control("GET", "/config/runtime").headers["etag"]
    sut.control(
        "PATCH",
        "/config/runtime",
        json={"rate_limit": {"enabled": True, "rps": 0.1, "burst": 1}},
        headers={"If-Match": etag},
    )
    for _ in range(4):
        sut.get("/api/whoami")
    assert count("observastack_control_rejections_total", reason="rate_limited",
                 route="/api/whoami") == limited + 3  # fmt: skip
    assert count("observastack_http_requests_total", route="/api/whoami", status="429",
                 method="GET") == status + 3  # fmt: skip
    sut.control("POST", "/config/state/reset", params={"scope": "all"})
    sut.control("POST", "/config/faults", json={"kind": "error", "duration_s": 5})
    sut.get("/api/whoami")
    assert count("observastack_fault_effects_total", kind="error", route="/api/whoami") == (
        effects + 1
    )
