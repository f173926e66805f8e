"""Run one gateway: nginx (and, for the secure-path, the authz service), supervised as a unit.

nginx resolves upstream names once, when it loads its configuration. A restarted backend can come
back on another address, so the supervisor re-resolves the watched names every second and reloads
nginx (SIGHUP: new workers, old ones finish their requests) when an address changes.
If any child exits, the others are stopped and the supervisor exits non-zero, so the container's
restart policy restarts the whole gateway (a secure-gateway without its token check must not run).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["GatewaySpec", "resolve", "run"]

STOP_TIMEOUT_S = 10.0


def log(event: str, **fields: object) -> None:
    line = {"ts": round(time.time(), 3), "component": "gateway-supervisor", "event": event}
    print(json.dumps(line | fields), file=sys.stderr, flush=True)


def resolve(name: str) -> frozenset[str]:
    """IPv4 addresses of ``name`` now; empty if it does not resolve (e.g. container down)."""
    try:
        infos = socket.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except OSError:
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


@dataclass(frozen=True)
class GatewaySpec:
    nginx_conf: str
    watch: Sequence[str] = ()
    with_authz: bool = False
    watch_interval_s: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)


def _watch(spec: GatewaySpec, nginx: subprocess.Popen[bytes], stop: threading.Event) -> None:
    known = {name: resolve(name) for name in spec.watch}
    while not stop.wait(spec.watch_interval_s):
        for name in spec.watch:
            now = resolve(name)
            if now and now != known[name]:
                log("upstream address changed; reloading nginx", name=name,
                    old=sorted(known[name]), new=sorted(now))  # fmt: skip
                known[name] = now
                if nginx.poll() is None:
                    nginx.send_signal(signal.SIGHUP)


def run(spec: GatewaySpec) -> int:
    children: dict[str, subprocess.Popen[bytes]] = {}
    if spec.with_authz:
        children["authz"] = subprocess.Popen([sys.executable, "-m", "identity.authz"])
    nginx = subprocess.Popen(["nginx", "-e", "stderr", "-c", spec.nginx_conf])
    children["nginx"] = nginx
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()
        for name, proc in children.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("started", conf=spec.nginx_conf, watch=list(spec.watch),
        pids={n: p.pid for n, p in children.items()})  # fmt: skip
    if spec.watch:
        threading.Thread(target=_watch, args=(spec, nginx, stopping), daemon=True).start()

    pid, status = os.wait()  # the first child to exit decides
    name = next((n for n, p in children.items() if p.pid == pid), "?")
    asked_to_stop = stopping.is_set()
    if not asked_to_stop:
        log("child exited; stopping the gateway", child=name,
            exit_code=os.waitstatus_to_exitcode(status))  # fmt: skip
        stop(signal.SIGTERM, None)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in children.values():
        if proc.pid != pid:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0 if asked_to_stop else 1
