"""Prometheus instruments of the SUT, multi-process aware.

``PROMETHEUS_MULTIPROC_DIR`` must be set before the Gunicorn master starts (prometheus_client picks
its value class at import; set later, workers get in-memory values and ``/metrics`` is silently
empty). The master wipes the directory at start and marks dead workers (``gunicorn_conf``).

Gauge modes (LIBRARY-FACTS §3): values every worker holds alike (config version, desired workers,
flag states, active faults) are ``livemostrecent``: the freshest value of a live worker, and a dead
worker's series go away when the master marks it dead. Per-worker quantities that add up (live
workers, pool connections) are ``livesum``. Counters are never reset while the master lives, so
they only go up, across HUPs and worker crashes.
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
    workers_desired: Gauge
    config_version: Gauge
    config_setting: Gauge
    flag_state: Gauge
    faults_active: Gauge
    faults_created: Counter
    fault_effects: Counter
    rejections: Counter
    control_changes: Counter
    pool_in_use: Gauge
    pool_waiting: Gauge
    pool_capacity: Gauge


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
        workers_desired=Gauge(
            "observastack_workers_desired",
            "Worker count the runtime config asks for (the Control Agent converges to it).",
            multiprocess_mode="livemostrecent",
        ),
        config_version=Gauge(
            "observastack_config_version",
            "Version of the runtime config document (its ETag).",
            multiprocess_mode="livemostrecent",
        ),
        config_setting=Gauge(
            "observastack_config_setting",
            "Runtime config values in base units (seconds, requests/s; rps 0: no limit).",
            ["setting"],
            multiprocess_mode="livemostrecent",
        ),
        flag_state=Gauge(
            "observastack_feature_flag",
            "Feature flags: 1 on the flag's current variant (true/false for boolean flags).",
            ["flag", "variant"],
            multiprocess_mode="livemostrecent",
        ),
        faults_active=Gauge(
            "observastack_faults_active",
            "Injected faults in effect now, by kind.",
            ["kind"],
            multiprocess_mode="livemostrecent",
        ),
        faults_created=Counter(
            "observastack_faults_injected", "Faults created through /config/faults.", ["kind"]
        ),
        fault_effects=Counter(
            "observastack_fault_effects",
            "Requests a latency or error fault acted on, by fault kind and route template.",
            ["kind", "route"],
        ),
        rejections=Counter(
            "observastack_control_rejections",
            "Requests refused by the runtime config: rate_limited (429), timeout (504), "
            "pool_exhausted (503).",
            ["reason", "route"],
        ),
        control_changes=Counter(
            "observastack_control_changes",
            "Change requests on /config/*, by action and result (ok, rejected).",
            ["action", "result"],
        ),
        pool_in_use=Gauge(
            "observastack_pool_connections_in_use",
            "Simulated downstream connections in use (sum over workers).",
            multiprocess_mode="livesum",
        ),
        pool_waiting=Gauge(
            "observastack_pool_requests_waiting",
            "Requests queued for a simulated downstream connection (sum over workers).",
            multiprocess_mode="livesum",
        ),
        pool_capacity=Gauge(
            "observastack_pool_connections_available",
            "Pool size minus connections held by pool_exhaustion faults (sum over workers).",
            multiprocess_mode="livesum",
        ),
    )


def exposition() -> bytes:
    """Render every worker's metrics (multi-process) or this process's (single process)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
