"""Figures: one measured quantity with its goal, and how to print them as a table."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    how: str
    value: float | None
    unit: str
    goal: str = "report"
    met: bool | None = None  # None: no goal
    detail: dict[str, Any] = field(default_factory=dict)

    def cell(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{self.value:.3g} {self.unit}".strip()


def summarize(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * (len(ordered) - 1))))]

    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": q(0.95),
        "max": ordered[-1],
        "min": ordered[0],
    }


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")),
                       cpu)  # fmt: skip
    except OSError:
        pass
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True, timeout=20, check=False)  # fmt: skip
    import os

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": engine.stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def table(figures: Sequence[Figure]) -> str:
    rows = [("figure", "value", "goal", "met"), ("---", "---", "---", "---")]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "**no**")
        rows.append((f.name, f.cell(), f.goal, met))
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def as_json(figures: Sequence[Figure]) -> list[dict[str, Any]]:
    return [asdict(f) for f in figures]
