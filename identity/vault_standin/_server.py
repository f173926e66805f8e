"""Serving the Vault stand-in over HTTP (stdlib ``ThreadingHTTPServer``), in a thread or as main.

The stand-in uses the standard library's HTTP server rather than Sanic on purpose: it must run
inside the unit-test process on an ephemeral port (Sanic cannot be started twice in one process),
its load is a handful of requests per token lifetime, and it has no dependency beyond pyjwt.

Environment, read once by ``StandinSettings.from_env``::

    VAULT_STANDIN_HOST / VAULT_STANDIN_PORT   listen address, default 0.0.0.0:8200
    VAULT_DEV_LISTEN_ADDRESS                  Vault dev mode's "host:port", used when the above
                                              are unset (so one compose env serves both)
    VAULT_DEV_ROOT_TOKEN_ID                   the dev root token, default "root"
    VAULT_API_ADDR                            the default OIDC issuer base, default
                                              http://127.0.0.1:<port>
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from identity._errors import ConfigError
from identity._serving import BackgroundHTTPServer, exit_on_sigterm
from identity.vault_standin._api import STANDIN_VERSION, Reply, handle
from identity.vault_standin._state import DEV_ROOT_TOKEN, VaultState

__all__ = ["StandinSettings", "VaultStandinServer", "main"]

_log = logging.getLogger("observastack.vault_standin")
_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class StandinSettings:
    host: str = "0.0.0.0"
    port: int = 8200
    root_token: str = DEV_ROOT_TOKEN
    api_addr: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StandinSettings:
        host, port_text = cls.host, str(cls.port)
        listen = environ.get("VAULT_DEV_LISTEN_ADDRESS", "").strip()
        if listen:
            host, _, port_text = listen.rpartition(":")
        host = environ.get("VAULT_STANDIN_HOST", "").strip() or host or cls.host
        port_text = environ.get("VAULT_STANDIN_PORT", "").strip() or port_text
        try:
            port = int(port_text)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise ConfigError(f"VAULT_STANDIN_PORT must be a port number, got {port_text!r}")
        root = environ.get("VAULT_DEV_ROOT_TOKEN_ID", "").strip() or cls.root_token
        api_addr = environ.get("VAULT_API_ADDR", "").strip() or None
        if api_addr and urlsplit(api_addr).scheme not in ("http", "https"):
            raise ConfigError(f"VAULT_API_ADDR must be an http(s) URL, got {api_addr!r}")
        return cls(host=host, port=port, root_token=root, api_addr=api_addr)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "observastack-vault-standin"
    sys_version = ""
    server: _Server

    def _dispatch(self) -> None:
        length_text = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self._send(Reply(413, b'{"errors":["request body too large or malformed"]}'))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        headers = dict(self.headers.items())
        self._send(handle(self.server.state, self.command, path, headers, body))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Cache-Control", "no-store")
        if reply.status != 204:
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.status != 204 and self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_LIST = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        # Only method, path and status: never headers (X-Vault-Token) or bodies (passwords).
        _log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, args[1:2])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: VaultState | None) -> None:
        super().__init__(address, _Handler)
        self.state: VaultState = state or VaultState()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut open keep-alive connections, as a real restart would."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("connection error from %s", client_address, exc_info=True)


class VaultStandinServer(BackgroundHTTPServer):
    """The stand-in on ``host:port`` (port 0 = ephemeral); ``start()`` serves in a thread."""

    thread_name = "vault-standin"
    _server: _Server

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        root_token: str = DEV_ROOT_TOKEN,
        api_addr: str | None = None,
        key_bits: int = 2048,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(_Server((host, port), None))
        bound_port = self._server.server_address[1]
        url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{url_host}:{bound_port}"
        self.state = VaultState(
            root_token=root_token, api_addr=api_addr or self.url, key_bits=key_bits, clock=clock
        )
        self._server.state = self.state

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _before_close(self) -> None:
        self._server.close_connections()  # cut open connections, like a process exit


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the stand-in in the foreground until SIGTERM / SIGINT."""
    try:
        settings = StandinSettings.from_env(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"identity.vault_standin: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    exit_on_sigterm()
    server = VaultStandinServer(
        host=settings.host,
        port=settings.port,
        root_token=settings.root_token,
        api_addr=settings.api_addr or f"http://127.0.0.1:{settings.port}",
    )
    _log.info(
        json.dumps(
            {
                "event": "vault_standin_start",
                "message": "Vault STAND-IN (not HashiCorp Vault): an in-memory subset of Vault's "
                "dev-mode HTTP API; everything is forgotten on restart",
                "listen": f"{settings.host}:{server.port}",
                "issuer": server.state.oidc.issuer,
                "version": STANDIN_VERSION,
            }
        )
    )
    return server.serve_until_terminated()
