"""Run the benchmark set: ``python -m bench.run [--quick] [--only NAME ...] [--json PATH]``.

Prints a Markdown table (figure, value, goal, met) and writes every sample to JSON, with the
machine it ran on. Timed goals live here, not in tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import control_figures, identity_figures, stack_figures
from bench._figures import Figure, as_json, machine, table
from pytest_observastack._build import BuildPlan, build_images
from pytest_observastack._stack import Stack, StackOptions

GROUPS = ("build", "up", "throughput", "jwt", "control", "memory")


def _control(
    args: argparse.Namespace,
    stack: Stack,
    clients: control_figures.Clients,
    section: Callable[[str], None],
) -> list[Figure]:
    figures = []
    trials = 5 if args.quick else 20
    if "control" in args.only:
        section(f"HUP round trip, {trials} trials")
        figures.append(control_figures.hup_round_trip(clients, trials))
        section("10 HUPs under ~200 req/s")
        figures.append(control_figures.reloads_under_load(stack, clients))
        section("secure-path added latency")
        figures.append(control_figures.secure_path_added_latency(clients))
        section("config change visible in all workers")
        figures.append(control_figures.config_propagation(clients))
    if "memory" in args.only:
        section("memory at rest and under load")
        figures += control_figures.memory(stack)
    if "control" in args.only:
        section(f"control-plane recovery after restart, {trials} trials")
        figures.append(control_figures.recovery_after_restart(stack, clients, trials))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args(argv)
    trials = 2 if args.quick else 5
    started = time.monotonic()
    figures: list[Figure] = []

    def section(name: str) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)

    if "build" in args.only:
        section("image builds")
        figures += stack_figures.image_builds()
    else:
        build_images(BuildPlan(), say=lambda _m: None)
    if "up" in args.only:
        section(f"stack up, {trials} trials")
        figures.append(stack_figures.stack_up(trials))
    if "jwt" in args.only:
        section("JWT verify, warm cache (in-process)")
        figures.append(identity_figures.jwt_verify_warm(2_000 if args.quick else 10_000))
    if {"throughput", "control", "memory"} & set(args.only):
        with Stack(StackOptions(project="obsbench", build=False), say=lambda _m: None) as stack:
            if "throughput" in args.only:
                section("user-path throughput (wrk)")
                figures.append(stack_figures.user_path_throughput(stack, 1 if args.quick else 3))
            if {"control", "memory"} & set(args.only):
                clients = control_figures.Clients(stack)
                try:
                    figures += _control(args, stack, clients, section)
                finally:
                    clients.close()

    report = {"machine": machine(), "seconds": round(time.monotonic() - started, 1),
              "figures": as_json(figures)}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    m = report["machine"]
    print(f"\nMachine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}, "
          f"Docker {m['docker']}, {m['date']}\n")  # fmt: skip
    print(table(figures))
    print(f"\n(JSON: {args.json}; {report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
