"""CPU and memory faults: one worker owns them and runs ``sut.control.hog`` processes.

Several workers see the same fault table; only one must act on CPU and memory faults, or every
worker would burn ``cores`` cores. Ownership is an exclusive ``flock`` on a file in the runtime
directory: the first worker to take it owns, and when that worker exits or crashes the kernel
releases the lock and another worker (or a new one, after a HUP) takes over on its next tick and
starts the hogs again for what remains of each fault. Each hog exits by itself at its fault's
expiry or when its parent changes, so nothing outlives a fault.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sut.control.model import Fault

__all__ = ["PressureOwner"]

log = logging.getLogger("sut.control.pressure")


class PressureOwner:
    def __init__(self, lock_path: Path, *, wall: Callable[[], float] = time.time) -> None:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = lock_path
        self.wall = wall
        self._fd: int | None = None
        self._hogs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._stopping: list[subprocess.Popen[bytes]] = []

    @property
    def owner(self) -> bool:
        return self._fd is not None

    def running(self) -> dict[str, int]:
        """Fault id -> hog processes still running."""
        return {fid: sum(1 for p in procs if p.poll() is None) for fid, procs in self._hogs.items()}

    def reconcile(self, faults: Iterable[Fault], now: float) -> None:
        """Make the hogs match the active CPU and memory faults (owner only). A hog that died
        early (e.g. the OOM killer took a memory hog) is not restarted."""
        wanted = {f.id: f for f in faults if f.kind in ("cpu", "memory") and now < f.expires_at}
        self.reap()
        if not wanted and not self._hogs:
            return
        if not self._take_ownership():
            return
        for fid in [fid for fid in self._hogs if fid not in wanted]:
            self._stop(fid)
        for fid, fault in wanted.items():
            if fid not in self._hogs:
                self._hogs[fid] = self._start(fault, now)

    def _start(self, fault: Fault, now: float) -> list[subprocess.Popen[bytes]]:
        # The fault's clock may be injected (tests); the hog needs a real wall-clock deadline.
        until = self.wall() + (fault.expires_at - now)
        base = [sys.executable, "-m", "sut.control.hog"]
        common = ["--until", f"{until:.3f}", "--parent", str(os.getpid()), "--fault", fault.id]
        if fault.kind == "cpu":
            argvs = [[*base, "cpu", *common] for _ in range(int(fault.params["cores"]))]
        else:
            argvs = [[*base, "memory", "--mb", str(int(fault.params["mb"])), *common]]
        procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True) for argv in argvs]
        log.info(
            "started %d hog(s) for %s fault %s (pids %s)",
            len(procs), fault.kind, fault.id, [p.pid for p in procs],
        )  # fmt: skip
        return procs

    def _stop(self, fid: str) -> None:
        for proc in self._hogs.pop(fid, []):
            if proc.poll() is None:
                proc.terminate()
                self._stopping.append(proc)

    def reap(self) -> None:
        """Collect exited hogs (they are this worker's children)."""
        for procs in self._hogs.values():
            for proc in procs:
                proc.poll()
        self._stopping = [p for p in self._stopping if p.poll() is None]

    def _take_ownership(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Stop every hog and give up ownership (worker shutdown)."""
        procs = [p for group in self._hogs.values() for p in group] + self._stopping
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        self._hogs.clear()
        self._stopping.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
