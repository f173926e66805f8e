"""Reachability probe: can this container resolve and reach each target?"""

from __future__ import annotations

import socket
from typing import Any

import httpx

__all__ = ["probe_target"]


def _tcp(ip: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return "open"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__


def probe_target(target: str, timeout: float = 1.0) -> dict[str, Any]:
    """``target`` is ``host:port/path``; host may be a DNS name or an address."""
    hostport, _, path = target.partition("/")
    host, _, port_s = hostport.rpartition(":")
    port = int(port_s)
    result: dict[str, Any] = {"target": target, "host": host, "port": port}
    try:
        infos = socket.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        ips = sorted({str(info[4][0]) for info in infos})
        result["dns"] = ips
    except socket.gaierror as exc:
        result["dns"] = None
        result["dns_error"] = str(exc)
        ips = []
    result["tcp"] = {ip: _tcp(ip, port, timeout) for ip in ips}
    if any(state == "open" for state in result["tcp"].values()):
        try:
            response = httpx.get(f"http://{hostport}/{path}", timeout=timeout, trust_env=False)
            result["http_status"] = response.status_code
        except httpx.HTTPError as exc:
            result["http_error"] = type(exc).__name__
    return result
