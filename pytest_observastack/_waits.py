"""Wait-until with a deadline that reports what it last saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pytest_observastack._errors import WaitTimeout

T = TypeVar("T")

__all__ = ["wait_until"]


def wait_until(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """Call ``probe`` until ``done(result)`` holds; return that result.

    Exceptions from ``probe`` count as "not yet" and are reported if the deadline passes.
    Raises ``WaitTimeout`` naming ``what`` and the last observation (value or exception).
    """
    deadline = time.monotonic() + timeout
    last: object = "<nothing observed yet>"
    while True:
        try:
            value = probe()
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if done(value):
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.1f} s waiting for {what}; last saw: {last!r}",
                last_seen=last,
            )
        time.sleep(interval)
