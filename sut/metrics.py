"""Prometheus instruments of the SUT, multi-process aware.

``PROMETHEUS_MULTIPROC_DIR`` must be set before the Gunicorn master starts (prometheus_client picks
its value class at import; set later, workers get in-memory values and ``/metrics`` is silently
empty). The master wipes the directory at start and marks dead workers (``gunicorn_conf``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "Instruments", "exposition", "instruments"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Instruments:
    requests: Counter
    latency: Histogram
    workers_live: Gauge
    items_created: Counter


@cache
def instruments() -> Instruments:
    """Create the instruments once per process (lazily: nothing happens at import)."""
    return Instruments(
        requests=Counter(
            "observastack_http_requests",
            "HTTP requests served by the SUT, by route template, method and status.",
            ["route", "method", "status"],
        ),
        latency=Histogram(
            "observastack_http_request_duration_seconds",
            "Time from request received to response written, by route template and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
        ),
        workers_live=Gauge(
            "observastack_workers_live",
            "Live Gunicorn workers serving the SUT (sum over live worker processes).",
            multiprocess_mode="livesum",
        ),
        items_created=Counter("observastack_items_created", "Items created via the API."),
    )


def exposition() -> bytes:
    """Render every worker's metrics (multi-process) or this process's (single process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
