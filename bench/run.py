"""Run the benchmark set: ``python -m bench.run [--quick] [--only NAME ...] [--json PATH]``.

Prints a Markdown table (figure, value, goal, met) and writes every sample to JSON, with the
machine it ran on. Timed goals live here, not in tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench import stack_figures
from bench._figures import Figure, as_json, machine, table
from pytest_observastack._build import BuildPlan, build_images
from pytest_observastack._stack import Stack, StackOptions

GROUPS = ("build", "up", "throughput")


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
    if "throughput" in args.only:
        with Stack(StackOptions(project="obsbench", build=False), say=lambda _m: None) as stack:
            stack_figures.wait_settled()
            section("user-path throughput (wrk)")
            figures.append(stack_figures.user_path_throughput(stack, 3 if not args.quick else 1))

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
