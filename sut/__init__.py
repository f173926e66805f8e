"""The system under test (SUT): a Sanic app served by a Gunicorn master.

Data enters as HTTP on port 8000 (only gateways reach it: ``/api/*`` from the user-gateway,
``/metrics`` from the obs-gateway, ``/config/*`` from the secure-gateway) and leaves as JSON
responses, Prometheus exposition (multi-process mode, aggregated over every worker) and log lines.
Gunicorn runs it with the native ``asgi`` worker:
``gunicorn -c python:sut.gunicorn_conf 'sut.app:create_asgi()'``.

Modules: ``config`` (environment, read once), ``asgi`` (the header fix for Gunicorn's native
worker), ``app`` (routes), ``store`` (the items data, shared by all workers), ``metrics``
(Prometheus instruments), ``gunicorn_conf`` (master hooks: wipe the metrics dir, reap dead workers).
"""
