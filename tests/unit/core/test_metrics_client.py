"""MetricsClient / Scrape without an engine: parsing, sums, quantiles, error messages."""

from __future__ import annotations

import math

import httpx
import pytest

from pytest_observastack._errors import MetricNotFound, WaitTimeout
from pytest_observastack._metrics import MetricsClient, Scrape, histogram_quantile

EXPOSITION = """\
# HELP observastack_http_requests_total HTTP requests.
# TYPE observastack_http_requests_total counter
observastack_http_requests_total{route="/api/items",method="GET",status="200"} 7.0
observastack_http_requests_total{route="/api/items",method="POST",status="422"} 2.0
observastack_http_requests_total{route="/api/io",method="GET",status="200"} 3.0
# HELP lat Latency.
# TYPE lat histogram
lat_bucket{le="0.1",route="/api/io"} 0.0
lat_bucket{le="0.25",route="/api/io"} 0.0
lat_bucket{le="0.5",route="/api/io"} 10.0
lat_bucket{le="+Inf",route="/api/io"} 10.0
lat_count{route="/api/io"} 10.0
lat_sum{route="/api/io"} 3.1
"""


def test_value_sums_matching_series_by_family_or_sample_name() -> None:
    scrape = Scrape(EXPOSITION)
    assert scrape.value("observastack_http_requests") == 12
    assert scrape.value("observastack_http_requests_total", route="/api/items") == 9
    assert scrape.value("observastack_http_requests", method="POST") == 2


def test_missing_series_error_lists_what_was_observed() -> None:
    with pytest.raises(MetricNotFound) as info:
        Scrape(EXPOSITION).value("observastack_http_requests", status="500")
    message = str(info.value)
    assert "no series observastack_http_requests matching {'status': '500'}" in message
    assert 'route="/api/items"' in message


def test_total_is_zero_for_a_counter_not_yet_seen() -> None:
    assert Scrape(EXPOSITION).total("observastack_http_requests", status="503") == 0


def test_quantile_interpolates_inside_the_bucket() -> None:
    assert Scrape(EXPOSITION).quantile("lat", 0.5, route="/api/io") == pytest.approx(0.375)


def test_histogram_quantile_edge_cases() -> None:
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0


def _client(texts: list[str]) -> MetricsClient:
    replies = iter(texts)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=next(replies))

    return MetricsClient(httpx.Client(transport=httpx.MockTransport(handler), base_url="http://o"))


def test_delta_reports_the_increase_across_the_block() -> None:
    later = EXPOSITION.replace("} 7.0", "} 10.0")
    metrics = _client([EXPOSITION, later])
    with metrics.delta("observastack_http_requests", route="/api/items", status="200") as d:
        pass
    assert d.value == 3


def test_wait_for_times_out_showing_the_last_scrape() -> None:
    metrics = _client([EXPOSITION] * 50)
    with pytest.raises(WaitTimeout) as info:
        metrics.wait_for("observastack_http_requests", lambda v: v > 100, timeout=0.2,
                         interval=0.05, route="/api/io")  # fmt: skip
    assert 'observastack_http_requests_total{method="GET",route="/api/io",status="200"} 3' in str(
        info.value
    )
