"""Finding the Gunicorn master and its workers through /proc (psutil).

What is visible is the agent's PID namespace, which it shares with the backend container. The
master is recognised by its process title (setproctitle: ``gunicorn: master [<app>]``), because the
usual shortcuts are unreliable (LIBRARY-FACTS §2): ``pidof`` finds nothing for a Python launcher,
orphaned workers also have ppid 1 and the same name, and the pid file lives in the backend's file
system and vanishes during a HUP. Rules, in order:

1. candidates: live processes whose title matches the master pattern, other than the namespace
   root (PID 1, the init) and the agent's own process;
2. drop candidates whose parent is itself a candidate: a worker that has just been forked still
   carries its master's title until it renames itself (this also makes a pattern that matches the
   plain command line work when setproctitle is missing: workers are the master's children);
3. if more than one remains, prefer one with live children, then the oldest.

Processes are identified by ``ProcessId`` (pid, create_time), never by pid alone, so a recycled pid
is never mistaken for the process the agent bound to. The namespace's *generation* is the start
time of its root process: a new backend container means a new init with a new start time (the
namespace inode number is reused by the kernel and tells nothing).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import psutil

from agent.config import DEFAULT_MASTER_TITLE
from agent.errors import MasterNotFound

__all__ = ["Discovery", "ProcessId", "process_title"]


@dataclass(frozen=True, order=True)
class ProcessId:
    """One process, as (pid, start time in seconds since the epoch)."""

    pid: int
    create_time: float

    def to_json(self) -> dict[str, int | float]:
        return {"pid": self.pid, "create_time": self.create_time}


def process_title(cmdline: list[str] | None) -> str:
    """The title as ``ps`` shows it: setproctitle pads argv with empty strings."""
    return " ".join(part for part in cmdline or [] if part)


class Discovery:
    """Reads the process table; holds no state besides its settings."""

    def __init__(
        self,
        master_title: str = DEFAULT_MASTER_TITLE,
        *,
        namespace_root_pid: int = 1,
        own_pid: int | None = None,
    ) -> None:
        self.master_pattern = re.compile(master_title)
        self.namespace_root_pid = namespace_root_pid
        self.own_pid = os.getpid() if own_pid is None else own_pid

    def namespace_root(self) -> ProcessId:
        """The namespace's root process; its start time is the generation."""
        ident = identify(self.namespace_root_pid)
        if ident is None:
            raise MasterNotFound(f"namespace root pid {self.namespace_root_pid} is not visible")
        return ident

    def find_master(self) -> tuple[ProcessId, str]:
        """Return the master and its title, or raise ``MasterNotFound`` describing what was seen."""
        table: dict[int, tuple[int, float, str]] = {}
        for proc in psutil.process_iter(["ppid", "cmdline", "create_time", "status"]):
            info = proc.info
            if info["status"] == psutil.STATUS_ZOMBIE or info["create_time"] is None:
                continue
            table[proc.pid] = (info["ppid"], info["create_time"], process_title(info["cmdline"]))
        excluded = {self.namespace_root_pid, self.own_pid}
        candidates = {
            pid
            for pid, (_, _, title) in table.items()
            if pid not in excluded and self.master_pattern.search(title)
        }
        masters = [pid for pid in candidates if table[pid][0] not in candidates]
        if not masters:
            raise MasterNotFound(
                f"no process title matches {self.master_pattern.pattern!r} "
                f"(excluding pids {sorted(excluded)})",
                last_seen=_describe(table, excluded),
            )
        with_children = {ppid for ppid, _, _ in table.values()}
        masters.sort(key=lambda pid: (pid not in with_children, table[pid][1]))
        chosen = masters[0]
        return ProcessId(chosen, table[chosen][1]), table[chosen][2]

    def wait_for_master(self, timeout: float, interval: float = 0.1) -> tuple[ProcessId, str]:
        """Poll ``find_master`` until it succeeds or ``timeout`` seconds have passed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.find_master()
            except MasterNotFound as exc:
                if time.monotonic() >= deadline:
                    raise MasterNotFound(
                        f"no Gunicorn master appeared within {timeout:.1f} s: {exc}; "
                        f"processes seen: {exc.last_seen}. Is the backend running, and does the "
                        "agent share its PID namespace (compose: pid: 'service:backend')?",
                        last_seen=exc.last_seen,
                    ) from None
            time.sleep(interval)

    def workers(self, master: ProcessId) -> tuple[ProcessId, ...]:
        """Live children of ``master``, oldest first; ``MasterNotFound`` if it is gone."""
        proc = _process(master)
        if proc is None:
            raise MasterNotFound(f"master {master.pid} (started {master.create_time}) is gone")
        try:
            children = proc.children()
        except psutil.NoSuchProcess:
            raise MasterNotFound(f"master {master.pid} vanished while listing workers") from None
        found = [ident for child in children if (ident := _live_ident(child)) is not None]
        return tuple(sorted(found, key=lambda ident: (ident.create_time, ident.pid)))

    def is_alive(self, ident: ProcessId) -> bool:
        """True while that exact process exists and is not a zombie."""
        return _process(ident) is not None

    def is_master(self, ident: ProcessId) -> bool:
        """True while that exact process exists and still carries a master title."""
        proc = _process(ident)
        if proc is None:
            return False
        try:
            return self.master_pattern.search(process_title(proc.cmdline())) is not None
        except psutil.Error:
            return False


def identify(pid: int) -> ProcessId | None:
    """The ``ProcessId`` currently behind ``pid``, or None."""
    try:
        return _live_ident(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return None


def _live_ident(proc: psutil.Process) -> ProcessId | None:
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return ProcessId(proc.pid, proc.create_time())
    except psutil.NoSuchProcess:
        return None


def _process(ident: ProcessId) -> psutil.Process | None:
    """The live process ``ident`` names, or None when it is gone or its pid was recycled."""
    try:
        proc = psutil.Process(ident.pid)
    except psutil.NoSuchProcess:
        return None
    live = _live_ident(proc)
    return proc if live == ident else None


def _describe(table: dict[int, tuple[int, float, str]], excluded: set[int]) -> str:
    shown = [
        f"{pid}<-{ppid} {title[:60]!r}"
        for pid, (ppid, _, title) in sorted(table.items())
        if title  # kernel threads have none
    ]
    note = f" (excluded: {sorted(excluded)})"
    return "; ".join(shown[:20]) + (" ..." if len(shown) > 20 else "") + note
