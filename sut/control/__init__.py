"""The application channel of the SUT: runtime config, faults, feature flags, state operations.

Reached as ``/config/*`` through the secure-gateway only (JWT checked there; the verified subject
arrives in ``X-Observastack-Subject`` and goes into the audit line). Data in: JSON requests; data
out: JSON documents and RFC 9457 problems, one audit line per change, gauges and counters on
``/metrics``, and ``desired-workers.json`` in the data directory for the Control Agent, which
converges the Gunicorn worker count (the app never signals its own master).

Path of a change: ``*_api`` (validate, compare-and-set) → ``store`` (SQLite, shared by all
workers) → every worker's ``state.refresh()`` on its next request → ``guard`` (what ``/api/*``
requests get: 429, 504, 503, injected latency and errors) and ``pressure`` (CPU/memory hogs).
See docs/app-channel.md.
"""

from __future__ import annotations

__all__: list[str] = []
