"""Shared fate: exit when the bound master is gone.

The agent is bound to one master, in one PID namespace, for its whole life. A thread checks every
``interval`` seconds that this exact (pid, start time) still lives; when it does not, it logs why,
flushes the logs and calls ``exit_process`` (``os._exit(3)`` in the service). Docker's restart
policy then starts the agent again, inside the backend's new namespace, where it binds to the new
master. (When the backend's PID 1 dies the kernel usually kills the agent first; the watch covers
the master dying while PID 1 stays, and the time before that.)
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

from agent.discovery import Discovery, ProcessId

__all__ = ["EXIT_MASTER_GONE", "Watcher", "exit_now"]

EXIT_MASTER_GONE = 3
log = logging.getLogger("agent.watch")


def exit_now(code: int) -> None:
    """Flush every log handler and leave at once (no Sanic shutdown: there is nothing to save)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Watcher:
    """Checks ``master`` every ``interval`` s in a daemon thread; calls ``exit_process`` on loss."""

    def __init__(
        self,
        discovery: Discovery,
        master: ProcessId,
        *,
        interval: float,
        exit_process: Callable[[int], None] = exit_now,
    ) -> None:
        self.discovery = discovery
        self.master = master
        self.interval = interval
        self.exit_process = exit_process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="agent-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def check(self) -> bool:
        """True while the master lives; otherwise log, call ``exit_process`` and return False."""
        if self.discovery.is_alive(self.master):
            return True
        log.error(
            "bound master is gone; exiting so the restart policy rebinds the agent",
            extra={
                "event": "master_gone",
                "master_pid": self.master.pid,
                "master_create_time": self.master.create_time,
                "exit_code": EXIT_MASTER_GONE,
            },
        )
        self.exit_process(EXIT_MASTER_GONE)
        return False

    def run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                if not self.check():
                    return
        except Exception:
            # A watch that cannot watch must not leave a deaf agent behind.
            log.exception("watch loop failed; exiting", extra={"event": "watch_failed"})
            self.exit_process(EXIT_MASTER_GONE)
