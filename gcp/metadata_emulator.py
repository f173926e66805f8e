"""An EMULATOR of the GCE metadata server's identity endpoints (not Google's server).

It lets the GCP token path (``google.oauth2.id_token.fetch_id_token``) and the GCP validation
profile run unchanged on a laptop or in CI: point google-auth at it with ``GCE_METADATA_HOST`` and
``GCE_METADATA_IP`` (both, before google-auth's ``_metadata`` module is imported).

Data in: metadata requests, which must carry ``Metadata-Flavor: Google`` (403 otherwise) and must
not carry ``X-Forwarded-For`` (403, as on GCE). Data out: the real paths' answers, each with
``Metadata-Flavor: Google``:

- ``GET /`` -> ``computeMetadata/`` (the ping google-auth does first);
- ``GET /computeMetadata/v1/instance/service-accounts/`` -> ``default/`` and the e-mail;
- ``GET .../service-accounts/default/?recursive=true`` -> ``{"aliases", "email", "scopes"}``;
- ``GET .../service-accounts/default/email`` -> the e-mail;
- ``GET .../service-accounts/default/identity?audience=A[&format=full]`` -> a raw RS256 JWT shaped
  like Google's: ``iss=https://accounts.google.com``, ``aud=A``, ``azp`` and ``sub`` = the account's
  numeric id, ``email``, ``email_verified``, ``iat``, ``exp=iat+3600``; ``format=full`` adds the
  ``google.compute_engine`` block;
- ``GET /computeMetadata/v1/project/project-id`` and ``.../instance/zone``;
- ``GET /oauth2/v3/certs``: the JWKS, standing in for https://www.googleapis.com/oauth2/v3/certs
  (no ``Metadata-Flavor`` needed there, like Google's).

Not emulated: access tokens, other metadata keys, ``wait-for-change``, mTLS, token binding.

Environment (read once by ``EmulatorSettings.from_env``)::

    METADATA_EMULATOR_HOST      listen address, default 127.0.0.1 (it mints tokens: keep it local)
    METADATA_EMULATOR_PORT      default 8225
    METADATA_EMULATOR_EMAIL     service-account e-mail, default
                                observastack-orchestrator@observastack-sim.iam.gserviceaccount.com
    METADATA_EMULATOR_PROJECT   project id, default observastack-sim
    METADATA_EMULATOR_TOKEN_LIFETIME_S   ID token lifetime, default 3600 (Google's)
    METADATA_EMULATOR_EXTRA_ACCOUNTS     comma list of further service-account e-mails served
                                         at ``service-accounts/<email>/...`` and signed with the
                                         same key (Google signs every account's tokens with one
                                         key set): lets tests present a validly signed token of
                                         an account a verifier does not allow. Default: none.
    METADATA_EMULATOR_ALLOW_BACKDATE     1 = honour ``backdate_s=N`` (0..86400) on ``identity``,
                                         an EMULATOR-ONLY test hook that moves ``iat`` and
                                         ``exp`` N seconds into the past (tests of a verifier's
                                         maximum token age). Default 0: the parameter is a 400.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from identity._serving import BackgroundHTTPServer, exit_on_sigterm

__all__ = [
    "CERTS_PATH",
    "GOOGLE_ISSUER",
    "EmulatorSettings",
    "MetadataEmulator",
    "MetadataEmulatorServer",
    "main",
]

GOOGLE_ISSUER = "https://accounts.google.com"
CERTS_PATH = "/oauth2/v3/certs"
_SA_PREFIX = "/computeMetadata/v1/instance/service-accounts/"
_log = logging.getLogger("observastack.gcp.metadata_emulator")
_DEFAULT_EMAIL = "observastack-orchestrator@observastack-sim.iam.gserviceaccount.com"


class ConfigError(ValueError):
    """The emulator's environment is invalid."""


@dataclass(frozen=True)
class EmulatorSettings:
    host: str = "127.0.0.1"
    port: int = 8225
    email: str = _DEFAULT_EMAIL
    project: str = "observastack-sim"
    token_lifetime_s: int = 3600
    extra_accounts: tuple[str, ...] = ()
    allow_backdate: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EmulatorSettings:
        def get(name: str, default: str) -> str:
            return environ.get(name, "").strip() or default

        values: dict[str, int] = {}
        for name, field_name, default in (
            ("METADATA_EMULATOR_PORT", "port", cls.port),
            ("METADATA_EMULATOR_TOKEN_LIFETIME_S", "token_lifetime_s", cls.token_lifetime_s),
        ):
            raw = get(name, str(default))
            try:
                values[field_name] = int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if not 0 <= values["port"] <= 65535:
            raise ConfigError(f"METADATA_EMULATOR_PORT out of range: {values['port']}")
        if not 1 <= values["token_lifetime_s"] <= 3600:
            raise ConfigError("METADATA_EMULATOR_TOKEN_LIFETIME_S must be in 1..3600")
        email = get("METADATA_EMULATOR_EMAIL", cls.email)
        if "@" not in email:
            raise ConfigError(f"METADATA_EMULATOR_EMAIL must be an e-mail, got {email!r}")
        extra = tuple(
            item.strip()
            for item in environ.get("METADATA_EMULATOR_EXTRA_ACCOUNTS", "").split(",")
            if item.strip()
        )
        for item in extra:
            if "@" not in item or item in (email, "default"):
                raise ConfigError(
                    "METADATA_EMULATOR_EXTRA_ACCOUNTS must list e-mails other than "
                    f"METADATA_EMULATOR_EMAIL, got {item!r}"
                )
        backdate = get("METADATA_EMULATOR_ALLOW_BACKDATE", "0").lower()
        if backdate not in ("0", "1", "false", "true", "no", "yes"):
            raise ConfigError(f"METADATA_EMULATOR_ALLOW_BACKDATE must be 0 or 1, got {backdate!r}")
        return cls(
            host=get("METADATA_EMULATOR_HOST", cls.host),
            email=email,
            project=get("METADATA_EMULATOR_PROJECT", cls.project),
            extra_accounts=extra,
            allow_backdate=backdate in ("1", "true", "yes"),
            **values,
        )


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/text"
    metadata: bool = True


class MetadataEmulator:
    """The emulator's behaviour, independent of any socket (``handle`` maps a request)."""

    def __init__(
        self, settings: EmulatorSettings | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha1(public_der, usedforsecurity=False).hexdigest()
        self.unique_id = _unique_id(self.settings.email)
        self.identity_requests = 0

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                          "n": jwk["n"], "e": jwk["e"]}]}  # fmt: skip

    def mint_id_token(
        self, audience: str, *, full: bool = False, email: str | None = None, backdate_s: int = 0
    ) -> str:
        """A Google-shaped ID token for ``email`` (default: the VM's account), issued
        ``backdate_s`` seconds ago."""
        email = email or self.settings.email
        unique_id = _unique_id(email)
        now = int(self._clock()) - backdate_s
        claims: dict[str, Any] = {
            "aud": audience,
            "azp": unique_id,
            "email": email,
            "email_verified": True,
            "exp": now + self.settings.token_lifetime_s,
            "iat": now,
            "iss": GOOGLE_ISSUER,
            "sub": unique_id,
        }
        if full:
            claims["google"] = {
                "compute_engine": {
                    "instance_creation_timestamp": now - 3600,
                    "instance_id": str(int(unique_id) % 10**19),
                    "instance_name": "observastack-orchestrator",
                    "project_id": self.settings.project,
                    "project_number": int(unique_id[:12]),
                    "zone": "europe-west1-b",
                }
            }
        headers = {"kid": self.kid, "typ": "JWT"}
        return jwt.encode(claims, self._key, algorithm="RS256", headers=headers)

    def handle(self, method: str, target: str, headers: Mapping[str, str]) -> _Reply:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        lowered = {name.lower(): value for name, value in headers.items()}
        if path == CERTS_PATH:
            return _Reply(200, json.dumps(self.jwks()).encode(), "application/json", False)
        if method not in ("GET", "HEAD"):
            return _Reply(405, b"Method not allowed\n")
        if "x-forwarded-for" in lowered:
            return _Reply(403, b"Request denied: X-Forwarded-For header present\n")
        if lowered.get("metadata-flavor") != "Google":
            return _Reply(403, b"Missing Metadata-Flavor:Google header.\n")
        if path == "/":
            return _Reply(200, b"computeMetadata/\n")
        if path == "/computeMetadata/v1/project/project-id":
            return _Reply(200, self.settings.project.encode())
        if path == "/computeMetadata/v1/instance/zone":
            return _Reply(200, f"projects/{self.unique_id[:12]}/zones/europe-west1-b".encode())
        if path == _SA_PREFIX:
            accounts = ("default", self.settings.email, *self.settings.extra_accounts)
            return _Reply(200, "".join(f"{name}/\n" for name in accounts).encode())
        if path.startswith(_SA_PREFIX):
            return self._service_account(path.removeprefix(_SA_PREFIX), query)
        return _Reply(404, b"Not Found\n")

    def _service_account(self, rest: str, query: dict[str, list[str]]) -> _Reply:
        account, _, leaf = rest.partition("/")
        if account == "default":
            email = self.settings.email
        elif account == self.settings.email or account in self.settings.extra_accounts:
            email = account
        else:
            return _Reply(404, b"Not Found\n")
        aliases = ["default"] if email == self.settings.email else []
        if leaf == "":
            if query.get("recursive", [""])[0].lower() == "true":
                info = {"aliases": aliases, "email": email,
                        "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}  # fmt: skip
                return _Reply(200, json.dumps(info).encode(), "application/json")
            return _Reply(200, b"aliases\nemail\nidentity\nscopes\n")
        if leaf == "email":
            return _Reply(200, email.encode())
        if leaf == "aliases":
            return _Reply(200, "".join(f"{a}\n" for a in aliases).encode())
        if leaf == "identity":
            audience = query.get("audience", [""])[0]
            if not audience:
                return _Reply(400, b"non-empty audience parameter required\n")
            backdate = self._backdate(query)
            if isinstance(backdate, _Reply):
                return backdate
            self.identity_requests += 1
            full = query.get("format", ["standard"])[0] == "full"
            token = self.mint_id_token(audience, full=full, email=email, backdate_s=backdate)
            return _Reply(200, token.encode())
        return _Reply(404, b"Not Found\n")

    def _backdate(self, query: dict[str, list[str]]) -> int | _Reply:
        """The emulator-only ``backdate_s`` test hook (0 when absent)."""
        raw = query.get("backdate_s", [""])[0]
        if not raw:
            return 0
        if not self.settings.allow_backdate:
            return _Reply(400, b"backdate_s is an emulator test hook; it is off here "
                               b"(METADATA_EMULATOR_ALLOW_BACKDATE=1 turns it on)\n")  # fmt: skip
        if not raw.isdigit() or int(raw) > 86_400:
            return _Reply(400, b"backdate_s must be an integer in 0..86400\n")
        return int(raw)


def _unique_id(email: str) -> str:
    """A stable 21-digit numeric id for an account, shaped like Google's ``sub``."""
    digest = hashlib.sha256(email.encode()).digest()
    return "1" + str(int.from_bytes(digest[:12], "big")).zfill(20)[-20:]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Metadata Server for VM (observastack emulator)"
    sys_version = ""
    server: _Server

    def _dispatch(self) -> None:
        length_text = self.headers.get("Content-Length") or "0"
        length = int(length_text) if length_text.isdigit() else 0
        if 0 < length <= 65536:
            self.rfile.read(length)
        reply = self.server.emulator.handle(self.command, self.path, dict(self.headers.items()))
        self.send_response(reply.status)
        if reply.metadata:
            self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, args[1:2])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: MetadataEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("connection error from %s", client_address, exc_info=True)


class MetadataEmulatorServer(BackgroundHTTPServer):
    """The emulator on ``host:port`` (port 0 = ephemeral); ``start()`` serves in a thread."""

    thread_name = "metadata-emulator"
    _server: _Server

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        settings = settings or EmulatorSettings(port=0)
        self.emulator = MetadataEmulator(settings)
        super().__init__(_Server((settings.host, settings.port), self.emulator))
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
        self.host_port = f"{host}:{self._server.server_address[1]}"
        self.url = f"http://{self.host_port}"
        self.certs_url = self.url + CERTS_PATH


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the emulator in the foreground until SIGTERM / SIGINT."""
    try:
        settings = EmulatorSettings.from_env(os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"gcp.metadata_emulator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    exit_on_sigterm()
    server = MetadataEmulatorServer(settings)
    _log.info(
        json.dumps(
            {
                "event": "metadata_emulator_start",
                "message": "GCE metadata server EMULATOR (not Google's): identity tokens only",
                "listen": server.host_port,
                "email": settings.email,
                "extra_accounts": list(settings.extra_accounts),
                "backdate_hook": settings.allow_backdate,
                "certs_url": server.certs_url,
            }
        )
    )
    return server.serve_until_terminated()


if __name__ == "__main__":
    raise SystemExit(main())
