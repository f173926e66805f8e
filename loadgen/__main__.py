"""``python -m loadgen {idle,ready,run,probe}``: see ``loadgen/__init__.py``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from loadgen.load import LoadPlan, run_load
from loadgen.probe import probe_target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("idle", help="wait for work (the container's main process)")
    sub.add_parser("ready", help="exit 0 if the load generator can run (healthcheck)")
    run = sub.add_parser("run", help="send a paced, bounded load and print a JSON result")
    run.add_argument("--url", required=True)
    run.add_argument("--rate", type=float, default=100.0, help="requests per second")
    run.add_argument("--duration", type=float, default=10.0, help="seconds (max 600)")
    run.add_argument("--concurrency", type=int, default=32)
    run.add_argument("--timeout", type=float, default=5.0)
    run.add_argument("--max-requests", type=int, default=200_000)
    run.add_argument("--no-keepalive", action="store_true")
    probe = sub.add_parser("probe", help="resolve and connect to targets, print JSON")
    probe.add_argument("targets", nargs="+", help="host:port/path")
    probe.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)

    if args.cmd == "idle":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            signal.pause()
    if args.cmd == "ready":
        return 0
    if args.cmd == "run":
        try:
            plan = LoadPlan(
                url=args.url,
                rate=args.rate,
                duration_s=args.duration,
                concurrency=args.concurrency,
                timeout_s=args.timeout,
                keepalive=not args.no_keepalive,
                max_requests=args.max_requests,
            )
        except ValueError as exc:
            parser.error(str(exc))
        print(json.dumps(run_load(plan)))
        return 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda t: probe_target(t, args.timeout), args.targets))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
