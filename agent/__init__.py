"""ObservaStack Control Agent: signals for the SUT's Gunicorn master, without a Docker socket.

The agent runs in its own container that joins the backend container's PID namespace
(compose ``pid: "service:backend"``) and sits on the ``control`` network only, behind the
secure-path. Data in: HTTP requests with a bearer token (``/agent/status``, ``/agent/signals``),
validated by the shared ``identity.validation`` module; the process table through /proc (psutil).
Data out: one of HUP, TERM, KILL, USR1, TTIN, TTOU delivered to the bound Gunicorn master only;
JSON answers; one JSON log line per request on stdout.

Path of a signal: ``api`` (token, input) → ``signals`` (name check, pidfd on the master) → kernel.
Lifecycle: ``__main__`` reads ``config``, waits for the master (``discovery``), binds ``runtime``,
starts ``watch`` (exit non-zero when the master is gone: shared fate) and serves ``api``.
See docs/agent.md.
"""

from __future__ import annotations

__all__: list[str] = []
