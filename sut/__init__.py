"""The system under test (SUT): a Sanic app served by a Gunicorn master.

Data enters as HTTP on port 8000 (only gateways reach it: ``/api/*`` from the user-gateway,
``/metrics`` from the obs-gateway, ``/config/*`` from the secure-gateway) and leaves as JSON
responses, Prometheus exposition (multi-process mode, aggregated over every worker) and log lines.
Gunicorn runs it with the native ``asgi`` worker:
``gunicorn -c python:sut.gunicorn_conf 'sut.app:create_asgi()'``.

Modules: ``config`` (environment, read once), ``asgi`` (the header fix for Gunicorn's native
worker), ``app`` (the app factory, ``/healthz``, ``/metrics``), ``workload`` (the ``/api/*``
routes), ``control`` (the application channel: ``/config/*`` runtime config, faults, flags and
state; see docs/app-channel.md), ``store`` (the items data, shared by all workers), ``metrics``
(Prometheus instruments), ``gunicorn_conf`` (master hooks: wipe the metrics dir and the faults,
reap dead workers).
"""
