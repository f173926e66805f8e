"""Scrape the observability path and ask questions of it.

Exposition is parsed with ``prometheus_client.parser``. Every lookup that finds nothing raises
``MetricNotFound`` listing the series that *were* there, so a failing lab says what it saw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pytest_observastack._errors import MetricNotFound, WaitTimeout

__all__ = ["Delta", "MetricsClient", "Scrape", "Series"]


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    value: float

    def __str__(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{labels}}} {self.value:g}"


class Scrape:
    """One parsed scrape."""

    def __init__(self, text: str, taken_at: float | None = None) -> None:
        self.text = text
        self.taken_at = time.monotonic() if taken_at is None else taken_at
        self.series = [
            Series(sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def _named(self, name: str) -> list[Series]:
        exact = [s for s in self.series if s.name == name]
        return exact or [s for s in self.series if s.name == f"{name}_total"]

    def select(self, name: str, **labels: str) -> list[Series]:
        wanted = labels.items()
        return [s for s in self._named(name) if all(s.labels.get(k) == v for k, v in wanted)]

    def _missing(self, name: str, labels: dict[str, str]) -> MetricNotFound:
        near = self._named(name) or [s for s in self.series if s.name.startswith(name[:12])]
        shown = "\n  ".join(str(s) for s in near[:20]) or "(none with a similar name)"
        return MetricNotFound(f"no series {name} matching {labels or '{}'}; observed:\n  {shown}")

    def value(self, name: str, **labels: str) -> float:
        """Sum of every series of ``name`` whose labels include ``labels``."""
        matched = self.select(name, **labels)
        if not matched:
            raise self._missing(name, labels)
        return sum(s.value for s in matched)

    def total(self, name: str, **labels: str) -> float:
        """Like ``value`` but 0 when no series matches (a counter not yet incremented)."""
        return sum(s.value for s in self.select(name, **labels))

    def quantile(self, name: str, q: float, **labels: str) -> float:
        """Histogram quantile (linear interpolation inside the bucket, as PromQL does)."""
        buckets: dict[float, float] = {}
        for s in self.select(f"{name}_bucket", **labels):
            le = math.inf if s.labels["le"] in ("+Inf", "inf") else float(s.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + s.value
        if not buckets:
            raise self._missing(f"{name}_bucket", labels)
        return histogram_quantile(q, sorted(buckets.items()))


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """``buckets``: sorted (upper bound, cumulative count); returns NaN when empty."""
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower_bound
            span = count - lower_count
            fraction = (rank - lower_count) / span if span else 1.0
            return lower_bound + (upper - lower_bound) * fraction
        lower_bound, lower_count = upper, count
    return lower_bound


@dataclass
class Delta:
    """Increase of a counter across a ``with`` block (``value`` is set when the block ends)."""

    name: str
    labels: dict[str, str]
    before: float
    value: float = math.nan


class MetricsClient:
    """Scrapes ``/metrics`` on the observability path."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def scrape(self) -> Scrape:
        response = self.client.get("/metrics")
        response.raise_for_status()
        return Scrape(response.text)

    def value(self, name: str, **labels: str) -> float:
        return self.scrape().value(name, **labels)

    def quantile(self, name: str, q: float, **labels: str) -> float:
        return self.scrape().quantile(name, q, **labels)

    def wait_for(
        self,
        name: str,
        predicate: Callable[[float], bool],
        timeout: float = 10.0,
        interval: float = 0.2,
        **labels: str,
    ) -> float:
        """Scrape until ``predicate(value)`` holds; the error shows the series last seen."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        last: Scrape | None = None
        while True:
            last = self.scrape()
            matched = last.select(name, **labels)
            if matched and predicate(sum(s.value for s in matched)):
                return sum(s.value for s in matched)
            if time.monotonic() >= deadline:
                shown = "\n  ".join(str(s) for s in (matched or last._named(name))[:20])
                raise WaitTimeout(
                    f"{name} {labels or ''} did not satisfy the predicate within {timeout:.1f} s;"
                    f" last scrape:\n  {shown or '(no such series)'}",
                    last_seen=matched,
                )
            time.sleep(interval)

    @contextmanager
    def delta(self, name: str, **labels: str) -> Iterator[Delta]:
        """``with metrics.delta("observastack_http_requests", route="/api/items") as d: ...``"""
        result = Delta(name, labels, self.scrape().total(name, **labels))
        yield result
        result.value = self.scrape().total(name, **labels) - result.before

    def rate(self, name: str, window_s: float = 2.0, **labels: str) -> float:
        """Per-second increase of a counter over ``window_s`` (two scrapes)."""
        first = self.scrape()
        time.sleep(window_s)  # the window itself is the measurement
        second = self.scrape()
        elapsed = second.taken_at - first.taken_at
        return (second.total(name, **labels) - first.total(name, **labels)) / elapsed
