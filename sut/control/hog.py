"""``python -m sut.control.hog``: one process that burns a CPU core or holds memory until a
deadline. Started by the worker that owns pressure faults (``sut.control.pressure``).

It stops on its own at ``--until`` (absolute wall-clock time), when its parent worker goes away
(its parent pid changes: a HUP or a crash of the worker) or on SIGTERM. So a CPU or memory fault
never outlives its duration, whatever happens to the worker that started it.
Standard library only: it must not touch the Prometheus multi-process directory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Sequence

CHECK_EVERY_S = 0.05


def _title(text: str) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle(text)
    except ImportError:  # the title is cosmetic (ps output)
        pass


def _should_stop(until: float, parent: int) -> bool:
    return time.time() >= until or os.getppid() != parent


def burn(until: float, parent: int) -> None:
    digest = b"observastack"
    while not _should_stop(until, parent):
        checkpoint = time.perf_counter() + CHECK_EVERY_S
        while time.perf_counter() < checkpoint:
            digest = hashlib.sha256(digest).digest()


def hold(mb: int, until: float, parent: int) -> None:
    block = bytearray(mb * 1024 * 1024)
    for offset in range(0, len(block), 4096):  # touch every page: resident, not just reserved
        block[offset] = 1
    while not _should_stop(until, parent):
        time.sleep(CHECK_EVERY_S)
    del block


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sut.control.hog")
    parser.add_argument("kind", choices=("cpu", "memory"))
    parser.add_argument("--until", type=float, required=True, help="wall-clock deadline")
    parser.add_argument("--parent", type=int, required=True, help="exit when this is not my ppid")
    parser.add_argument("--mb", type=int, default=0)
    parser.add_argument("--fault", default="?")
    args = parser.parse_args(argv)
    _title(f"observastack-hog: {args.kind} {args.fault}")
    if args.kind == "cpu":
        burn(args.until, args.parent)
    else:
        hold(args.mb, args.until, args.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
