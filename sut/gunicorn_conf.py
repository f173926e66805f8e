"""Gunicorn settings and master hooks for the SUT.

Loaded with ``gunicorn -c python:sut.gunicorn_conf 'sut.app:create_asgi()'``. Settings come from
``SutConfig`` (the environment, read once). The hooks keep Prometheus multi-process mode honest:
wipe the directory when the master starts (else counters carry over and stale series double),
and mark each dead worker so live-mode gauges drop it. The master also forgets every fault when
it starts (faults live in the runtime directory and never survive a backend restart; config and
flags in the data directory do).
"""

from __future__ import annotations

import shutil
from typing import Any

from sut.config import SutConfig

_config = SutConfig.from_env()

bind = [_config.bind]
workers = _config.workers
worker_class = "asgi"
graceful_timeout = _config.graceful_timeout_s
timeout = 30
keepalive = 5
proc_name = "sut"
pidfile = "/tmp/gunicorn.pid"
control_socket_disable = True  # Gunicorn >= 25.1 opens a control socket by default; unused
accesslog = _config.access_log
errorlog = "-"
loglevel = "info"
access_log_format = '%(h)s - - %(t)s "%(r)s" %(s)s %(b)s %(L)ss "%(a)s"'


def on_starting(server: Any) -> None:
    metrics_dir = _config.metrics_dir
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
    _config.data_dir.mkdir(parents=True, exist_ok=True)
    from sut.control.store import wipe_runtime

    wipe_runtime(_config.runtime_dir)


def child_exit(server: Any, worker: Any) -> None:
    if _config.metrics_dir is not None:
        from prometheus_client import multiprocess  # lazily: the env var is set by now

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
