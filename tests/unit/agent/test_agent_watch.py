"""Shared fate: the watch loop notices the master's death within its interval."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from agent.watch import EXIT_MASTER_GONE, Watcher


def test_master_death_calls_the_exit_hook_within_the_interval(gunicorn: Any, caplog: Any) -> None:
    exits: list[int] = []
    exited = threading.Event()

    def fake_exit(code: int) -> None:
        exits.append(code)
        exited.set()

    interval = 0.05
    master = gunicorn.master
    watcher = Watcher(gunicorn.discovery, master, interval=interval, exit_process=fake_exit)
    watcher.start()
    try:
        assert not exited.wait(3 * interval), "the master is alive: no exit yet"
        killed_at = time.monotonic()
        os.kill(master.pid, signal.SIGKILL)
        assert exited.wait(5), "the watch loop did not notice the master's death"
        noticed_after = time.monotonic() - killed_at
    finally:
        watcher.stop()
    assert exits == [EXIT_MASTER_GONE]
    assert noticed_after < interval + 0.5
    gone = [r for r in caplog.records if getattr(r, "event", None) == "master_gone"]
    assert len(gone) == 1
    assert gone[0].master_pid == master.pid
    assert gone[0].master_create_time == master.create_time


def test_a_live_master_keeps_the_loop_going(shared_gunicorn: Any) -> None:
    exits: list[int] = []
    watcher = Watcher(
        shared_gunicorn.discovery, shared_gunicorn.master, interval=0.01, exit_process=exits.append
    )
    assert watcher.check()
    watcher.start()
    watcher.stop()
    assert exits == []
