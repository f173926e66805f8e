"""Token sources for the secure-path, and an httpx auth that keeps a fresh token on requests.

Data in: Vault (hvac: userpass login, then ``identity/oidc/token/<role>``) or the GCE metadata
server (google-auth's ``fetch_id_token``). Data out: a compact JWT per ``token()`` call, and
``Authorization: Bearer ...`` on every request sent through ``RefreshingAuth``. Tokens are never
logged or put in error messages.

- ``TokenSource``: ``token(audience=None) -> str`` and ``invalidate()``.
- ``VaultTokenSource``: logs in lazily; after Vault restarted (dev mode forgets users, roles and
  tokens) it re-runs the idempotent bootstrap when it has the root token, then retries once.
- ``GceTokenSource``: points google-auth at a metadata host (emulator) by setting
  ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP`` before google-auth's ``_metadata`` module is
  imported (that module reads the host once, at import); fails clearly if it was imported before
  with another host.
- ``RefreshingAuth``: caches the token, refreshes it ``refresh_margin_s`` before ``exp`` (read
  without verification; also before ``iat + max_age_s`` when a verifier enforces a maximum age),
  and once, transparently, on a 401. Thread-safe; the async flow fetches tokens in a worker thread.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Protocol, runtime_checkable

import httpx
import jwt

from pytest_observastack._errors import TokenError

__all__ = ["GceTokenSource", "RefreshingAuth", "TokenSource", "VaultTokenSource"]

_METADATA_MODULE = "google.auth.compute_engine._metadata"


@runtime_checkable
class TokenSource(Protocol):
    """Something that hands out bearer tokens for the secure-path."""

    def token(self, audience: str | None = None) -> str:
        """A fresh token for ``audience`` (None: the source's configured audience)."""
        ...

    def invalidate(self) -> None:
        """Forget cached credentials so that the next ``token()`` starts from scratch."""
        ...


class VaultTokenSource:
    """Tokens from Vault's identity OIDC provider through hvac (userpass login).

    ``bootstrap`` re-creates Vault's configuration after a restart; by default, when
    ``root_token`` is given, it is ``identity.bootstrap.bootstrap_vault`` with these arguments
    (``audience`` and ``issuer`` are then required: the issuer is what the verifiers expect, e.g.
    ``http://vault:8200`` inside the stack, not necessarily ``addr`` as seen from the host).
    """

    def __init__(
        self,
        addr: str,
        username: str,
        password: str,
        role: str = "secure-path",
        *,
        root_token: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        bootstrap: Callable[[], None] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.addr = addr.rstrip("/")
        self.username = username
        self.role = role
        self.audience = audience
        self._password = password
        self._timeout_s = timeout_s
        if bootstrap is None and root_token is not None:
            if not audience or not issuer:
                raise TokenError(
                    "VaultTokenSource: re-bootstrapping Vault needs the audience and the issuer "
                    "base URL the verifiers expect (e.g. issuer='http://vault:8200'); pass "
                    "audience= and issuer= along with root_token="
                )
            bootstrap = _default_bootstrap(
                self.addr, root_token, audience, issuer, username, password, role
            )
        self._bootstrap = bootstrap
        self._lock = threading.Lock()
        self._client: Any = None
        self.bootstrap_runs = 0

    def token(self, audience: str | None = None) -> str:
        if audience is not None and self.audience is not None and audience != self.audience:
            raise TokenError(
                f"Vault role {self.role!r} issues tokens for audience {self.audience!r} only, "
                f"not {audience!r}; configure another role for another audience"
            )
        import hvac.exceptions
        import requests

        with self._lock:
            try:
                return self._issue_with_recovery()
            except hvac.exceptions.VaultError as exc:
                hint = (
                    "The bootstrap was re-run and did not help: check the role, key and policy."
                    if self._bootstrap is not None
                    else "Vault dev mode forgets everything on restart: give the token source "
                    "the root token (root_token=) so it can re-run the bootstrap, or run it."
                )
                raise TokenError(
                    f"Vault at {self.addr} gave no token for role {self.role!r} to user "
                    f"{self.username!r}: {type(exc).__name__}: {_first_line(exc)}. {hint}"
                ) from exc
            except requests.RequestException as exc:
                raise TokenError(
                    f"Vault at {self.addr} is not reachable ({type(exc).__name__}); "
                    "is the vault service up and published there?"
                ) from exc

    def _issue_with_recovery(self) -> str:
        import hvac.exceptions

        try:
            return self._issue()
        except hvac.exceptions.VaultError:
            # A client token Vault no longer knows, or a Vault that forgot the user and role
            # (dev mode restarted): start over once, re-running the bootstrap when we can.
            self._drop_client()
            if self._bootstrap is not None:
                self._run_bootstrap()
            return self._issue()

    def invalidate(self) -> None:
        with self._lock:
            self._drop_client()

    def close(self) -> None:
        self.invalidate()

    def _issue(self) -> str:
        client = self._client or self._login()
        response = client.secrets.identity.generate_signed_id_token(self.role)
        try:
            token = response["data"]["token"]
        except (TypeError, KeyError):
            raise TokenError(
                f"Vault at {self.addr} answered the token request without data.token"
            ) from None
        if not isinstance(token, str) or token.count(".") != 2:
            raise TokenError(f"Vault at {self.addr} returned something that is not a JWT")
        return token

    def _login(self) -> Any:
        import hvac

        client = hvac.Client(url=self.addr, token="", timeout=self._timeout_s)
        try:
            client.auth.userpass.login(self.username, self._password)
        except BaseException:
            client.adapter.close()
            raise
        self._client = client
        return client

    def _run_bootstrap(self) -> None:
        from identity._errors import BootstrapError

        assert self._bootstrap is not None
        self.bootstrap_runs += 1
        try:
            self._bootstrap()
        except BootstrapError as exc:
            raise TokenError(f"re-bootstrapping Vault at {self.addr} failed: {exc}") from exc

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.adapter.close()
            self._client = None


def _default_bootstrap(
    addr: str, root: str, audience: str, issuer: str, username: str, password: str, role: str
) -> Callable[[], None]:
    def run() -> None:
        from identity.bootstrap import bootstrap_vault

        bootstrap_vault(
            addr, root, audience=audience, issuer=issuer, username=username, password=password,
            role=role,
        )  # fmt: skip

    return run


class GceTokenSource:
    """Google-signed ID tokens from the GCE metadata server (or its emulator).

    ``metadata_host`` ("host:port") selects an emulator; None uses the real metadata server.
    Setting it changes this process's ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``.
    """

    def __init__(self, audience: str, *, metadata_host: str | None = None) -> None:
        if not audience:
            raise TokenError("GceTokenSource needs a non-empty audience")
        self.audience = audience
        self.metadata_host = metadata_host
        if metadata_host is not None:
            _point_google_auth_at(metadata_host)

    def token(self, audience: str | None = None) -> str:
        try:
            import google.auth.exceptions
            import google.auth.transport.requests
            import google.oauth2.id_token
            import requests
        except ImportError as exc:
            raise TokenError(
                f"GceTokenSource needs google-auth and requests ({exc}); "
                "pip install 'google-auth[requests]'"
            ) from exc
        where = self.metadata_host or "the GCE metadata server"
        fetch: Callable[[Any, str], object] = google.oauth2.id_token.fetch_id_token
        try:
            with requests.Session() as session:
                request = google.auth.transport.requests.Request(session)
                token = fetch(request, audience or self.audience)
        except google.auth.exceptions.GoogleAuthError as exc:
            raise TokenError(
                f"no ID token from {where}: {type(exc).__name__}: {_first_line(exc)}. "
                "Off GCP, run the metadata emulator and pass metadata_host='host:port'; "
                "GOOGLE_APPLICATION_CREDENTIALS, if set, takes precedence."
            ) from exc
        if not isinstance(token, str) or token.count(".") != 2:
            raise TokenError(f"{where} returned something that is not a JWT")
        return token

    def invalidate(self) -> None:
        """Nothing is cached here (google-auth asks the metadata server every time)."""


def _point_google_auth_at(host_port: str) -> None:
    module = sys.modules.get(_METADATA_MODULE)
    if module is not None:
        current = getattr(module, "_GCE_METADATA_HOST", None)
        if current != host_port:
            raise TokenError(
                f"google-auth was already imported pointing at metadata host {current!r}, not "
                f"{host_port!r}; it reads GCE_METADATA_HOST only at import. Set "
                f"GCE_METADATA_HOST and GCE_METADATA_IP to {host_port} before anything imports "
                "google.auth.compute_engine (or create the GceTokenSource first)."
            )
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        existing = os.environ.get(name)
        if existing and existing != host_port:
            raise TokenError(
                f"{name} is set to {existing!r} but GceTokenSource was given {host_port!r}; "
                "unset it or pass the same value"
            )
    os.environ["GCE_METADATA_HOST"] = host_port
    os.environ["GCE_METADATA_IP"] = host_port
    os.environ.pop("GCE_METADATA_ROOT", None)
    if module is None:
        importlib.import_module(_METADATA_MODULE)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "(no message)"


class RefreshingAuth(httpx.Auth):
    """Bearer auth that refreshes before expiry and once on a 401; share it across threads."""

    requires_request_body = True

    def __init__(
        self,
        source: TokenSource,
        *,
        audience: str | None = None,
        refresh_margin_s: float = 30.0,
        max_age_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.audience = audience
        self.refresh_margin_s = refresh_margin_s
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.fetches = 0

    def current_token(self, *, stale: str | None = None) -> str:
        """The cached token, fetching a new one when it is due or equal to ``stale``."""
        with self._lock:
            due = self._token is None or self._clock() >= self._refresh_at
            if due or (stale is not None and self._token == stale):
                if stale is not None:
                    self.source.invalidate()
                self._token = self.source.token(self.audience)
                self._refresh_at = self._refresh_time(self._token)
                self.fetches += 1
            assert self._token is not None
            return self._token

    def _refresh_time(self, token: str) -> float:
        now = self._clock()
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return now  # opaque to us: refresh every time rather than send a stale token
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float):
            return now
        issued = iat if isinstance(iat, int | float) else now
        lifetime = max(0.0, float(exp) - float(issued))
        margin = min(self.refresh_margin_s, lifetime / 4)
        deadline = float(exp)
        if self.max_age_s is not None:
            deadline = min(deadline, float(issued) + self.max_age_s)
        return deadline - margin

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.current_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            response.read()
            request.headers["Authorization"] = f"Bearer {self.current_token(stale=token)}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import anyio.to_thread

        token = await anyio.to_thread.run_sync(self.current_token)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            await response.aread()
            fresh = await anyio.to_thread.run_sync(lambda: self.current_token(stale=token))
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request
