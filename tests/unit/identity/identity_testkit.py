"""Helpers shared by the identity unit tests (imported by name: a plain module, not a conftest)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from identity import ValidationPolicy

ISSUER = "http://vault.test:8200/v1/identity/oidc"
AUDIENCE = "https://secure-path.observastack.test"
SUBJECT = "6f1c1b0e-entity"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": jwk["n"], "e": jwk["e"],
            **extra}  # fmt: skip


class FakeClock:
    """A clock the test moves by hand (monotonic or wall, as the caller uses it)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class JwksServer:
    """Serves ``document`` at ``/keys`` and counts fetches; ``status`` != 200 simulates trouble."""

    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    status: int = 200
    fetches: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/keys"

    def start(self, port: int = 0) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with owner._lock:
                    owner.fetches += 1
                body = json.dumps(owner.document).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")  # so that stop() really cuts clients off
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop serving (connections are refused afterwards); returns the port for a restart."""
        assert self._server is not None
        assert self._thread is not None
        port = int(self._server.server_address[1])
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        return port


def make_policy(jwks_url: str, **overrides: Any) -> ValidationPolicy:
    fields: dict[str, Any] = {"issuer": ISSUER, "jwks_url": jwks_url, "audience": AUDIENCE}
    fields.update(overrides)
    return ValidationPolicy(**fields)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "iat": now,
                            "exp": now + 300}  # fmt: skip
    for name, value in overrides.items():
        if value is _DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


_DROP = object()
DROP: Any = _DROP


def raw_token(header: object, payload: object, signature: bytes = b"sig") -> str:
    """An unsigned-looking token from arbitrary header / payload JSON values."""
    return ".".join(
        [b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()),
         b64url(signature)]
    )  # fmt: skip


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
