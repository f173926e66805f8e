"""The agent's state: the master it is bound to, the generation, and the signal history.

``AgentCore.bind`` waits for a Gunicorn master and binds to its (pid, start time) for the agent's
whole life: if that master goes, the agent exits (see ``agent.watch``) instead of rebinding in
place, because a new master means a new backend container and a new PID namespace. The HTTP layer
(``agent.api``) only translates between requests and these methods.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from agent.audit import SignalHistory
from agent.discovery import Discovery, ProcessId
from agent.errors import MasterNotFound
from agent.signals import Target, open_target

__all__ = ["AgentCore", "StatusPart"]


class StatusPart(Protocol):
    """Something that adds a section to the status document (``agent.reconcile.Reconciler``)."""

    def snapshot(self) -> dict[str, Any]: ...


class AgentCore:
    """What the agent knows; safe to read from the watch thread and the server's event loop."""

    def __init__(
        self,
        discovery: Discovery,
        master: ProcessId,
        master_title: str,
        *,
        history_size: int = 50,
    ) -> None:
        self.discovery = discovery
        self.master = master
        self.master_title = master_title
        self.root = discovery.namespace_root()
        self.history = SignalHistory(history_size)
        self.reconciler: StatusPart | None = None  # set by __main__ when reconciliation is on
        self._started = time.monotonic()

    @classmethod
    def bind(cls, discovery: Discovery, *, timeout: float, history_size: int = 50) -> AgentCore:
        """Wait up to ``timeout`` s for a master and bind to it (``MasterNotFound`` otherwise)."""
        master, title = discovery.wait_for_master(timeout)
        return cls(discovery, master, title, history_size=history_size)

    @property
    def generation(self) -> float:
        """Start time of the namespace's PID 1: changes whenever the backend container restarts."""
        return self.root.create_time

    def is_bound(self) -> bool:
        """True while the master the agent bound to is alive."""
        return self.discovery.is_alive(self.master)

    def open_target(self) -> Target:
        return open_target(self.master, self.discovery)

    def status(self) -> dict[str, Any]:
        """The status document; ``MasterNotFound`` once the bound master is gone."""
        workers = self.discovery.workers(self.master)
        now = time.time()
        return {
            "master": {**self.master.to_json(), "title": self.master_title},
            "workers": [worker.to_json() for worker in workers],
            "worker_pids": [worker.pid for worker in workers],
            "worker_count": len(workers),
            "generation": self.generation,
            "namespace_root": self.root.to_json(),
            "agent_pid": self.discovery.own_pid,
            "agent_uptime_s": round(time.monotonic() - self._started, 3),
            "backend_uptime_s": round(now - self.root.create_time, 3),
            "master_uptime_s": round(now - self.master.create_time, 3),
            "signals": [record.to_json() for record in self.history.snapshot()],
            "reconcile": self.reconciler.snapshot() if self.reconciler else None,
        }

    def require_bound(self) -> None:
        if not self.is_bound():
            raise MasterNotFound(
                f"the bound master {self.master.pid} (started {self.master.create_time}) is gone; "
                "the agent exits and comes back bound to the backend's new PID namespace"
            )
