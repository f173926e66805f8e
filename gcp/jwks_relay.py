"""A JWKS relay: Google's signing keys for verifiers that have no route out.

Why: on the GCP SUT host the Control Agent sits only on the ``control`` network, which is
``internal: true`` (no way out), yet it validates every token itself against Google's key set at
https://www.googleapis.com/oauth2/v3/certs. Rather than give the agent egress, this relay joins
``control`` and an ``egress`` network, fetches exactly ONE configured URL, and serves the last good
copy to both verifiers (agent and secure-gateway) at ``/oauth2/v3/certs``. In the local GCP
simulation its upstream is the metadata emulator's certs endpoint, so the same topology is tested.

Data in: the upstream JWKS (httpx, short timeouts, no redirects, size-capped, must parse as a
JWKS with at least one usable RS256 key). Data out: ``GET /oauth2/v3/certs`` (the upstream's
document, re-serialised) and ``GET /healthz``. Nothing is taken from requests: there is no way
to make the relay fetch another URL.

Freshness: a copy younger than ``JWKS_RELAY_MIN_FETCH_INTERVAL_S`` is served as is; an older one
triggers one upstream fetch (serialised); if that fails, the old copy is served while it is
younger than ``JWKS_RELAY_MAX_STALE_S``, then 503 (the verifiers then fail closed, as designed).

Environment (read once by ``RelaySettings.from_env``)::

    JWKS_RELAY_UPSTREAM              default https://www.googleapis.com/oauth2/v3/certs
    JWKS_RELAY_HOST                  listen address, default 127.0.0.1
    JWKS_RELAY_PORT                  default 8226
    JWKS_RELAY_MIN_FETCH_INTERVAL_S  default 5
    JWKS_RELAY_MAX_STALE_S           default 60
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

from identity._jwks import parse_jwks
from identity._serving import BackgroundHTTPServer, exit_on_sigterm

__all__ = ["CERTS_PATH", "GOOGLE_CERTS_URL", "JwksRelay", "RelaySettings", "main"]

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
CERTS_PATH = "/oauth2/v3/certs"
_MAX_BYTES = 256 * 1024
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_log = logging.getLogger("observastack.gcp.jwks_relay")


class ConfigError(ValueError):
    """The relay's environment is invalid."""


@dataclass(frozen=True)
class RelaySettings:
    upstream: str = GOOGLE_CERTS_URL
    host: str = "127.0.0.1"
    port: int = 8226
    min_fetch_interval_s: float = 5.0
    max_stale_s: float = 60.0

    def __post_init__(self) -> None:
        url = urlsplit(self.upstream)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"JWKS_RELAY_UPSTREAM must be an http(s) URL, got {self.upstream!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"JWKS_RELAY_PORT out of range: {self.port}")
        if not 0 <= self.min_fetch_interval_s < self.max_stale_s <= 86_400:
            raise ConfigError(
                "need 0 <= JWKS_RELAY_MIN_FETCH_INTERVAL_S < JWKS_RELAY_MAX_STALE_S <= 86400, got "
                f"{self.min_fetch_interval_s:g} and {self.max_stale_s:g}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RelaySettings:
        def get(name: str, default: object) -> str:
            return environ.get(name, "").strip() or str(default)

        try:
            return cls(
                upstream=get("JWKS_RELAY_UPSTREAM", cls.upstream),
                host=get("JWKS_RELAY_HOST", cls.host),
                port=int(get("JWKS_RELAY_PORT", cls.port)),
                min_fetch_interval_s=float(
                    get("JWKS_RELAY_MIN_FETCH_INTERVAL_S", cls.min_fetch_interval_s)
                ),
                max_stale_s=float(get("JWKS_RELAY_MAX_STALE_S", cls.max_stale_s)),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid JWKS relay environment: {exc}") from None


Fetch = Callable[[str], bytes]


class JwksRelay:
    """The relay's behaviour without a socket: ``document()`` gives the JWKS to serve or None."""

    def __init__(
        self,
        settings: RelaySettings,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._fetch = fetch or _http_fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None
        self.last_error = "no fetch attempted yet"
        self.fetches = 0

    def document(self) -> bytes | None:
        """The JWKS to serve now (fetching when due), or None when no fresh-enough copy exists."""
        if self._fresh(self.settings.min_fetch_interval_s):
            return self._body
        with self._lock:
            now = self._clock()
            due = (
                self._last_attempt is None
                or now - self._last_attempt >= self.settings.min_fetch_interval_s
            )
            if due:
                self._last_attempt = now
                self._refresh(now)
            return self._body if self._fresh(self.settings.max_stale_s) else None

    def _fresh(self, limit: float) -> bool:
        return self._body is not None and self._clock() - self._fetched_at < limit

    def _refresh(self, now: float) -> None:
        self.fetches += 1
        try:
            raw = self._fetch(self.settings.upstream)
            document = json.loads(raw)
            if not parse_jwks(document):
                raise ValueError("no usable RS256 key in it")
        except (httpx.HTTPError, ValueError, RelayFetchError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            _event(logging.WARNING, outcome="error", error=self.last_error)
            return
        # Never pass on private key members, whatever the upstream publishes by mistake.
        keys = [k for k in document["keys"] if isinstance(k, dict) and not _PRIVATE & k.keys()]
        self._body = json.dumps({"keys": keys}).encode()
        self._fetched_at = now
        self.last_error = ""
        _event(logging.INFO, outcome="ok", keys=len(keys))

    def handle(self, path: str) -> tuple[int, bytes]:
        """(status, JSON body) for a GET of ``path``."""
        if path not in (CERTS_PATH, "/healthz"):
            return 404, b'{"error":"not found"}'
        body = self.document()
        if body is None:
            detail = {"error": "no fresh JWKS from upstream", "detail": self.last_error}
            return 503, json.dumps(detail).encode()
        return (200, body) if path == CERTS_PATH else (200, b'{"status":"ok"}')


class RelayFetchError(Exception):
    """The upstream answered, but not with something we relay."""


def _http_fetch(url: str) -> bytes:
    timeout = httpx.Timeout(2.0, connect=1.0)
    client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
    with client, client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        if response.status_code != 200:
            raise RelayFetchError(f"HTTP {response.status_code} from {url}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > _MAX_BYTES:
                raise RelayFetchError(f"response larger than {_MAX_BYTES} bytes")
    return bytes(body)


def _event(level: int, **fields: object) -> None:
    _log.log(level, json.dumps({"event": "jwks_relay_fetch", **fields}))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "observastack-jwks-relay"
    sys_version = ""
    server: _Server

    def do_GET(self) -> None:
        status, body = self.server.relay.handle(urlsplit(self.path).path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, args[1:2])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], relay: JwksRelay) -> None:
        super().__init__(address, _Handler)
        self.relay = relay


class JwksRelayServer(BackgroundHTTPServer):
    """The relay on ``host:port`` (port 0 = ephemeral); ``start()`` serves in a thread."""

    thread_name = "jwks-relay"
    _server: _Server

    def __init__(self, settings: RelaySettings, *, fetch: Fetch | None = None) -> None:
        self.relay = JwksRelay(settings, fetch=fetch)
        super().__init__(_Server((settings.host, settings.port), self.relay))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the relay in the foreground until SIGTERM / SIGINT."""
    try:
        settings = RelaySettings.from_env(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"gcp.jwks_relay: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # our own fetch log line says it all
    exit_on_sigterm()
    server = JwksRelayServer(settings)
    start = {"event": "jwks_relay_start", "upstream": settings.upstream,
             "listen": f"{settings.host}:{settings.port}"}  # fmt: skip
    _log.info(json.dumps(start))
    server.relay.document()  # warm up; failures are logged and retried on demand
    return server.serve_until_terminated()


if __name__ == "__main__":
    raise SystemExit(main())
