"""Lab 1: the golden signals of the user path, read from Prometheus metrics.

Student version: fill in every ``...`` marked TODO(student), then run this file.
"""

from __future__ import annotations

import httpx
import pytest

from pytest_observastack import MetricsClient

REQUESTS = "observastack_http_requests"
LATENCY = "observastack_http_request_duration_seconds"


@pytest.mark.lab("golden-signals", points=2)
def test_traffic_counter_counts_every_request(
    user_client: httpx.Client, metrics: MetricsClient
) -> None:
    with metrics.delta(REQUESTS, route="/api/items", method="GET", status="200") as served:
        for _ in range(25):
            assert user_client.get("/api/items").status_code == 200
    assert served.value == ...  # TODO(student): how many requests did the block send?


@pytest.mark.lab("golden-signals", points=2)
def test_errors_are_counted_by_status(user_client: httpx.Client, metrics: MetricsClient) -> None:
    # TODO(student): which status label do rejected items get?
    with metrics.delta(REQUESTS, route="/api/items", method="POST", status=...) as rejected:
        for _ in range(5):
            assert user_client.post("/api/items", json={"name": ""}).status_code == 422
    assert rejected.value == 5


@pytest.mark.lab("golden-signals", points=3)
def test_latency_histogram_sees_slow_requests(
    user_client: httpx.Client, metrics: MetricsClient
) -> None:
    for _ in range(10):
        assert user_client.get("/api/io", params={"ms": 300}).status_code == 200
    p50 = metrics.quantile(LATENCY, ..., route="/api/io", status="200")  # TODO(student): median
    assert ... <= p50 <= ...  # TODO(student): bounds around 300 ms, allowing for bucket edges
