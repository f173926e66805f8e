"""``/config/faults``: validation, lifecycle, expiry on an injected clock, and what each kind does
to ``/api/*``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_observastack._waits import wait_until
from sut.control import guard
from sut.control.hog import burn, hold

from .conftest import AsgiClient, FakeClock


def inject(sut: AsgiClient, kind: str, duration_s: float = 30, **params: Any) -> Any:
    return sut.control(
        "POST", "/config/faults", json={"kind": kind, "duration_s": duration_s, "params": params}
    )


def created(sut: AsgiClient, kind: str, duration_s: float = 30, **params: Any) -> dict[str, Any]:
    response = inject(sut, kind, duration_s, **params)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def active_ids(sut: AsgiClient) -> list[str]:
    return [f["id"] for f in sut.control("GET", "/config/faults").json()["faults"]]


@pytest.fixture
def no_hogs(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU and memory faults without real processes (tests of the API only)."""
    monkeypatch.setattr("sut.control.pressure.PressureOwner.reconcile", lambda *a, **k: None)


@pytest.mark.usefixtures("no_hogs")
@pytest.mark.parametrize(
    ("kind", "params", "defaults"),
    [
        ("latency", {"fixed_ms": 5}, {"jitter_ms": 0, "probability": 1.0, "route": "/api/*"}),
        ("error", {}, {"status": 500, "probability": 1.0, "route": "/api/*", "first_n": None}),
        ("cpu", {}, {"cores": 1}),
        ("memory", {"mb": 8}, {}),
        ("pool_exhaustion", {}, {"connections": None}),
    ],
)
def test_each_kind_is_created_with_an_id_defaults_and_an_absolute_expiry(
    sut: AsgiClient, clock: FakeClock, kind: str, params: dict[str, Any], defaults: dict[str, Any]
) -> None:
    response = inject(sut, kind, 12.5, **params)
    assert response.status_code == 201, response.text
    fault = response.json()
    assert response.headers["location"] == f"/config/faults/{fault['id']}"
    assert fault["id"].startswith("f-")
    assert len(fault["id"]) == 14
    assert fault["kind"] == kind
    assert fault["params"] == {**defaults, **params}
    assert fault["expires_at"] == pytest.approx(clock.now + 12.5)
    assert fault["remaining_s"] == 12.5
    assert fault["state"] == "active"
    assert fault["created_by"] == "instructor@example"
    assert active_ids(sut) == [fault["id"]]
    assert sut.control("GET", f"/config/faults/{fault['id']}").json() == fault


LAT = "latency"
INVALID = [
    ({"kind": "latency", "params": {"fixed_ms": 1}}, "duration_s", "required"),
    ({"kind": "latency", "duration_s": -1, "params": {"fixed_ms": 1}}, "duration_s", "> 0"),
    ({"kind": "latency", "duration_s": 0, "params": {"fixed_ms": 1}}, "duration_s", "> 0"),
    ({"kind": "latency", "duration_s": "5", "params": {"fixed_ms": 1}}, "duration_s", "number"),
    ({"kind": LAT, "duration_s": 601, "params": {"fixed_ms": 1}}, "duration_s", "<= fault_max"),
    ({"kind": "latency", "duration_s": 5}, "params.fixed_ms", "required"),
    ({"kind": LAT, "duration_s": 5, "params": {"fixed_ms": -1}}, "params.fixed_ms", "0..60000"),
    ({"kind": "latency", "duration_s": 5, "params": {"fixed_ms": 1, "probability": 1.5}},
     "params.probability", "<= 1"),
    ({"kind": "latency", "duration_s": 5, "params": {"fixed_ms": 1, "route": "api"}},
     "params.route", "path pattern"),
    ({"kind": "error", "duration_s": 5, "params": {"status": 200}}, "params.status", "400..599"),
    ({"kind": "error", "duration_s": 5, "params": {"first_n": 0}}, "params.first_n", "1..1000000"),
    ({"kind": "cpu", "duration_s": 5, "params": {"cores": 3}}, "params.cores", "1..2"),
    ({"kind": "memory", "duration_s": 5, "params": {"mb": 65}}, "params.mb", "1..64"),
    ({"kind": "memory", "duration_s": 5, "params": {"mb": 8, "x": 1}}, "params.x", "unknown"),
    ({"kind": "disk", "duration_s": 5}, "kind", "must be one of"),
    ({"duration_s": 5}, "kind", "required"),
    ({"kind": "cpu", "duration_s": 5, "params": []}, "params", "JSON object"),
    ({"kind": "cpu", "duration_s": 5, "ttl": 3}, "ttl", "unknown field"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "detail"), INVALID)
def test_bad_faults_are_422_naming_the_field_and_nothing_is_injected(
    sut: AsgiClient, body: dict[str, Any], field: str, detail: str
) -> None:
    response = sut.control("POST", "/config/faults", json=body)
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["detail"] for e in response.json()["errors"]}
    assert field in errors, errors
    assert detail in errors[field]
    assert active_ids(sut) == []


def test_the_maximum_duration_follows_the_runtime_config(sut: AsgiClient) -> None:
    etag = sut.control("GET", "/config/runtime").headers["etag"]
    sut.control(
        "PATCH", "/config/runtime", json={"fault_max_duration_s": 5}, headers={"If-Match": etag}
    )
    assert inject(sut, "latency", 5, fixed_ms=1).status_code == 201
    response = inject(sut, "latency", 5.5, fixed_ms=1)
    assert response.status_code == 422
    assert "fault_max_duration_s (5 s)" in response.json()["errors"][0]["detail"]


@pytest.mark.usefixtures("no_hogs")
def test_totals_over_the_limits_are_409(sut: AsgiClient) -> None:
    created(sut, "memory", mb=40)
    response = inject(sut, "memory", mb=30)
    assert response.status_code == 409
    assert "40 MB" in response.json()["detail"]
    created(sut, "cpu", cores=2)
    assert inject(sut, "cpu", cores=1).status_code == 409


def test_at_most_32_faults_are_active_at_once(sut: AsgiClient) -> None:
    for _ in range(32):
        created(sut, "latency", fixed_ms=0)
    response = inject(sut, "latency", fixed_ms=0)
    assert response.status_code == 409
    assert "32" in response.json()["detail"]


def test_delete_and_all_clear(sut: AsgiClient) -> None:
    first, second, third = (created(sut, "latency", fixed_ms=0)["id"] for _ in range(3))
    assert sut.control("DELETE", f"/config/faults/{first}").status_code == 204
    assert active_ids(sut) == [second, third]
    again = sut.control("DELETE", f"/config/faults/{first}")
    assert again.status_code == 404
    assert "deleted" in again.json()["detail"]
    assert sut.control("GET", f"/config/faults/{first}").json()["state"] == "deleted"
    cleared = sut.control("DELETE", "/config/faults")
    assert cleared.status_code == 200
    assert cleared.json() == {"cleared": [second, third]}
    assert active_ids(sut) == []
    assert sut.control("DELETE", "/config/faults").json() == {"cleared": []}


def test_unknown_fault_ids_are_404(sut: AsgiClient) -> None:
    assert sut.control("GET", "/config/faults/f-000000000000").status_code == 404
    assert sut.control("DELETE", "/config/faults/nope").status_code == 404


def test_a_fault_clears_itself_when_it_expires(sut: AsgiClient, clock: FakeClock) -> None:
    fault = created(sut, "error", 10, status=503)
    assert sut.get("/api/whoami").status_code == 503
    clock.advance(9.99)
    assert sut.get("/api/whoami").status_code == 503
    assert sut.control("GET", "/config/faults").json()["faults"][0]["remaining_s"] == 0.01
    clock.advance(0.01)
    response = sut.get("/api/whoami")
    assert response.status_code == 200
    assert "x-observastack-fault" not in response.headers
    assert active_ids(sut) == []
    inspected = sut.control("GET", f"/config/faults/{fault['id']}").json()
    assert (inspected["state"], inspected["remaining_s"]) == ("expired", 0)
    assert sut.control("DELETE", f"/config/faults/{fault['id']}").status_code == 404


def test_a_restarted_backend_has_no_faults_but_keeps_its_config(serve: Any, tmp_path: Path) -> None:
    from sut.control.store import wipe_runtime

    first = serve()
    created(first, "latency", 300, fixed_ms=1)
    etag = first.control("GET", "/config/runtime").headers["etag"]
    first.control(
        "PATCH", "/config/runtime", json={"desired_workers": 4}, headers={"If-Match": etag}
    )
    first.control("PUT", "/config/flags/slow_path", json={"value": True})
    first.close()
    wipe_runtime(tmp_path / "runtime")  # what the Gunicorn master does when it starts
    second = serve()
    assert active_ids(second) == []
    assert second.control("GET", "/config/runtime").json()["desired_workers"] == 4
    assert second.control("GET", "/config/flags/slow_path").json()["value"] is True


# -- effects on /api/* ---------------------------------------------------------------------


def test_latency_is_added_to_matching_routes_only(sut: AsgiClient) -> None:
    fault = created(sut, "latency", fixed_ms=120, route="/api/items*")
    started = time.monotonic()
    response = sut.get("/api/items")
    assert time.monotonic() - started >= 0.12
    assert response.headers["x-observastack-fault"] == fault["id"]
    started = time.monotonic()
    response = sut.get("/api/whoami")
    assert time.monotonic() - started < 0.1
    assert "x-observastack-fault" not in response.headers


def test_latency_jitter_stays_within_fixed_plus_jitter(
    sut: AsgiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([0.0, 0.999])
    monkeypatch.setattr(guard, "_pick", lambda: next(picks))
    created(sut, "latency", fixed_ms=20, jitter_ms=100)
    started = time.monotonic()
    sut.get("/api/whoami")
    assert 0.115 <= time.monotonic() - started < 0.3


def test_error_answers_the_chosen_status_as_a_problem(sut: AsgiClient) -> None:
    fault = created(sut, "error", status=418, route="/api/whoami")
    response = sut.get("/api/whoami")
    assert response.status_code == 418
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-observastack-fault"] == fault["id"]
    assert response.json()["type"] == "urn:observastack:sut:injected-fault"
    assert sut.get("/api/items").status_code == 200


def test_error_first_n_fails_only_the_first_matching_requests(sut: AsgiClient) -> None:
    fault = created(sut, "error", status=503, first_n=3, route="/api/whoami")
    statuses = [sut.get("/api/whoami").status_code for _ in range(6)]
    assert statuses == [503, 503, 503, 200, 200, 200]
    assert sut.get("/api/items").status_code == 200  # not matching: not counted
    assert sut.control("GET", f"/config/faults/{fault['id']}").json()["matched"] == 3


def test_error_probability_is_roughly_honoured(sut: AsgiClient) -> None:
    created(sut, "error", status=500, probability=0.25)
    statuses = [sut.get("/api/whoami").status_code for _ in range(400)]
    assert 60 <= statuses.count(500) <= 140
    assert statuses.count(500) + statuses.count(200) == 400


def test_probability_zero_never_acts(sut: AsgiClient) -> None:
    created(sut, "error", status=500, probability=0)
    assert {sut.get("/api/whoami").status_code for _ in range(50)} == {200}


def test_pool_exhaustion_queues_then_503s_pool_routes_only(sut: AsgiClient) -> None:
    etag = sut.control("GET", "/config/runtime").headers["etag"]
    sut.control(
        "PATCH",
        "/config/runtime",
        json={"pool": {"acquire_timeout_ms": 80}},
        headers={"If-Match": etag},
    )
    created(sut, "pool_exhaustion")
    started = time.monotonic()
    response = sut.get("/api/io", params={"ms": 1})
    assert response.status_code == 503
    assert 0.08 <= time.monotonic() - started < 0.5
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "urn:observastack:sut:pool-exhausted"
    assert sut.get("/api/whoami").status_code == 200


def test_partial_pool_exhaustion_leaves_the_rest(sut: AsgiClient) -> None:
    etag = sut.control("GET", "/config/runtime").headers["etag"]
    sut.control(
        "PATCH",
        "/config/runtime",
        json={"pool": {"size": 3, "acquire_timeout_ms": 50}},
        headers={"If-Match": etag},
    )
    created(sut, "pool_exhaustion", connections=2)
    assert sut.app.ctx.control.pool.capacity == 1
    replies = sut.gather(*[("GET", "/api/io", {"params": {"ms": 150}})] * 2)
    assert sorted(r.status_code for r in replies) == [200, 503]


# -- CPU and memory: real hog processes ----------------------------------------------------


def hogs() -> list[psutil.Process]:
    """This process's live hog children (their title changes once they run)."""
    found = []
    for proc in psutil.Process().children():
        try:
            title = " ".join(proc.cmdline())
            if proc.status() != psutil.STATUS_ZOMBIE and "hog" in title:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.fixture
def reap() -> Iterator[None]:
    yield
    wait_until(hogs, lambda left: not left, timeout=5, what="hogs to exit", interval=0.02)


@pytest.mark.usefixtures("reap")
def test_cpu_fault_runs_one_hog_per_core_until_deleted(sut: AsgiClient) -> None:
    fault = created(sut, "cpu", 30, cores=2)
    procs = wait_until(hogs, lambda ps: len(ps) == 2, timeout=5, what="2 cpu hogs", interval=0.02)
    assert all(fault["id"] in " ".join(p.cmdline()) for p in procs)
    sut.control("DELETE", f"/config/faults/{fault['id']}")
    wait_until(hogs, lambda ps: not ps, timeout=5, what="hogs to stop", interval=0.02)


@pytest.mark.usefixtures("reap")
def test_memory_fault_holds_the_megabytes_and_stops_at_expiry(
    sut: AsgiClient, clock: FakeClock
) -> None:
    created(sut, "memory", 30, mb=24)
    [proc] = wait_until(
        hogs,
        lambda ps: len(ps) == 1 and ps[0].memory_info().rss > 24 * 2**20,
        timeout=5,
        what="a memory hog holding 24 MiB",
        interval=0.02,
    )
    clock.advance(30)
    sut.tick()
    wait_until(lambda: proc.is_running() and proc.status(), lambda s: s in (False, "zombie"),
               timeout=5, what="the hog to stop", interval=0.02)  # fmt: skip


def test_a_hog_stops_by_itself_at_its_deadline_or_when_its_parent_changes() -> None:
    started = time.monotonic()
    burn(time.time() + 0.15, parent=psutil.Process().ppid())
    assert 0.15 <= time.monotonic() - started < 0.5
    started = time.monotonic()
    burn(time.time() + 60, parent=-1)  # "my parent is gone": stop at once
    hold(1, time.time() + 60, parent=-1)
    assert time.monotonic() - started < 0.5


def test_closing_the_worker_stops_its_hogs(serve: Any) -> None:
    sut = serve()
    created(sut, "cpu", 30, cores=1)
    wait_until(hogs, lambda ps: len(ps) == 1, timeout=5, what="a cpu hog", interval=0.02)
    sut.close()
    assert hogs() == []
