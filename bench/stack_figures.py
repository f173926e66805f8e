"""Figures that need the engine: image builds, stack up time, user-path throughput."""

from __future__ import annotations

import re
import statistics

from bench._figures import Figure, summarize, timed
from pytest_observastack._build import BuildPlan, build_images
from pytest_observastack._compose import docker
from pytest_observastack._stack import Stack, StackOptions

IMAGE = "observastack/runtime:bench"


def _quiet(message: str) -> None:
    print(f"  . {message}", flush=True)


def image_builds() -> list[Figure]:
    build_images(BuildPlan(image=IMAGE), say=_quiet)  # base and wheels in place
    cold = timed(lambda: build_images(BuildPlan(image=IMAGE, no_cache=True), say=_quiet))
    cached = [timed(lambda: build_images(BuildPlan(image=IMAGE), say=_quiet)) for _ in range(3)]
    c = summarize(cached)
    return [
        Figure("image build, cold (base + wheels cached)", "wall time, docker build --no-cache",
               cold, "s"),
        Figure("image build, cached (no change)", "wall time, 3 trials, median", c["p50"], "s",
               "≤ 10 s", c["p50"] <= 10, c),
    ]  # fmt: skip


def stack_up(trials: int) -> Figure:
    samples = []
    for i in range(trials):
        stack = Stack(StackOptions(project=f"obsbench-up{i}", build=False), say=lambda _m: None)
        samples.append(timed(stack.up))
        stack.down()
    s = summarize(samples)
    return Figure("stack up to all-healthy (images built)", f"wall time, {trials} trials, median",
                  s["p50"], "s", "≤ 10 s median", s["p50"] <= 10, s)  # fmt: skip


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")


def _wrk(stack: Stack, url: str, seconds: int, connections: int) -> float:
    proc = docker(
        "run", "--rm", "--network", f"{stack.project}_backend", stack.image,
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url, timeout=seconds + 60,
    )  # fmt: skip
    match = _RPS.search(proc.stdout)
    if not match or "Non-2xx" in proc.stdout:
        raise RuntimeError(f"wrk against {url} failed or saw errors:\n{proc.stdout}")
    return float(match.group(1))


def user_path_throughput(stack: Stack, trials: int, seconds: int = 5) -> Figure:
    """wrk (Debian's) from a container on the backend network, alternating targets."""
    direct, gateway = [], []
    _wrk(stack, "http://backend:8000/api/whoami", 2, 16)  # warm-up
    for _ in range(trials):
        direct.append(_wrk(stack, "http://backend:8000/api/whoami", seconds, 16))
        gateway.append(_wrk(stack, "http://user-gateway:8080/api/whoami", seconds, 16))
    ratios = [g / d for g, d in zip(gateway, direct, strict=True)]
    ratio = statistics.median(ratios)
    return Figure(
        "user-path throughput, gateway vs direct", f"wrk -c16, {trials}×{seconds} s alternating",
        ratio, "×", "≥ 0.8×", ratio >= 0.8,
        {"direct_rps": direct, "gateway_rps": gateway, "ratios": ratios, "tool": "wrk 4 (Debian)"},
    )  # fmt: skip
