"""Token sources (Vault via the stand-in, GCE via the emulator) and the refreshing httpx auth."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from identity_contract import check_token_source_contract
from identity_testkit import AUDIENCE, FakeClock, raw_token

from gcp.metadata_emulator import MetadataEmulatorServer
from identity import TokenValidator, ValidationPolicy
from identity.bootstrap import bootstrap_vault, oidc_issuer
from identity.vault_standin import VaultStandinServer
from pytest_observastack._errors import TokenError
from pytest_observastack._tokens import RefreshingAuth, TokenSource, VaultTokenSource

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
ISSUER_BASE = "http://vault:8200"
USER, PASSWORD = "control-panel", "s3cret-pw"


def vault_validator(server: VaultStandinServer) -> TokenValidator:
    policy = ValidationPolicy(
        issuer=oidc_issuer(ISSUER_BASE),
        jwks_url=server.url + "/v1/identity/oidc/.well-known/keys",
        audience=AUDIENCE,
        jwks_refetch_interval_s=0,
    )
    return TokenValidator(policy)


def vault_source(server: VaultStandinServer, **kw: object) -> VaultTokenSource:
    options: dict[str, object] = {"root_token": "root", "audience": AUDIENCE,
                                  "issuer": ISSUER_BASE}  # fmt: skip
    options.update(kw)
    return VaultTokenSource(server.url, USER, PASSWORD, **options)  # type: ignore[arg-type]


@pytest.fixture
def vault() -> Iterator[VaultStandinServer]:
    with VaultStandinServer() as server:
        yield server


def run_gce_probe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCE_METADATA")}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE)])
    return subprocess.run(
        [sys.executable, str(HERE / "identity_gce_probe.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


# -- the shared contract --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vault", "gce"])
def test_token_source_contract(kind: str, vault: VaultStandinServer) -> None:
    if kind == "vault":
        source = vault_source(vault)  # Vault is empty: the first token() bootstraps it
        validator = vault_validator(vault)
        try:
            check_token_source_contract(source, validator, AUDIENCE)
        finally:
            validator.close()
            source.close()
        assert source.bootstrap_runs == 1
        return
    with MetadataEmulatorServer() as emulator:
        result = run_gce_probe("contract", emulator.host_port, AUDIENCE,
                               emulator.emulator.settings.email)  # fmt: skip
        assert result.stdout.startswith("OK contract"), result.stdout + result.stderr
        assert emulator.emulator.identity_requests >= 4


# -- VaultTokenSource -----------------------------------------------------------------------
def test_vault_restart_reruns_the_bootstrap(vault: VaultStandinServer) -> None:
    source = vault_source(vault)
    validator = vault_validator(vault)
    try:
        first = source.token()
        assert validator.validate(first).ok
        port = vault.port
        vault.stop()  # dev mode: everything forgotten
        with VaultStandinServer(port=port) as restarted:
            second = source.token()
            decision = validator.validate(second)
            assert decision.ok, decision.reason
            assert source.bootstrap_runs == 2
            first_sub = jwt.decode(first, options={"verify_signature": False})["sub"]
            assert decision.subject != first_sub  # a new Vault, a new entity
            assert restarted.port == port
    finally:
        validator.close()
        source.close()


def test_vault_restart_without_root_token_says_what_to_do(vault: VaultStandinServer) -> None:
    bootstrap_vault(vault.url, "root", audience=AUDIENCE, issuer=ISSUER_BASE, username=USER,
                    password=PASSWORD)  # fmt: skip
    source = VaultTokenSource(vault.url, USER, PASSWORD)
    try:
        assert source.token()
        port = vault.port
        vault.stop()
        with (
            VaultStandinServer(port=port),
            pytest.raises(TokenError, match="give the token source the root token") as info,
        ):
            source.token()
        assert "no handler for route" in str(info.value)  # userpass is gone too
        assert PASSWORD not in str(info.value)
    finally:
        source.close()


def test_vault_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = VaultTokenSource(f"http://127.0.0.1:{port}", USER, PASSWORD, timeout_s=1)
    with pytest.raises(TokenError, match="not reachable"):
        source.token()


def test_vault_source_has_one_audience(vault: VaultStandinServer) -> None:
    source = vault_source(vault)
    with pytest.raises(TokenError, match="issues tokens for audience"):
        source.token("https://elsewhere.example")
    with pytest.raises(TokenError, match="needs the audience and the issuer"):
        VaultTokenSource(vault.url, USER, PASSWORD, root_token="root")
    with pytest.raises(TokenError, match="needs the audience and the issuer"):
        VaultTokenSource(vault.url, USER, PASSWORD, root_token="root", audience=AUDIENCE)


def test_long_running_client_outlives_many_token_lifetimes() -> None:
    clock = FakeClock()
    with VaultStandinServer(clock=clock) as server:
        source = vault_source(server)
        policy = ValidationPolicy(
            issuer=oidc_issuer(ISSUER_BASE),
            jwks_url=server.url + "/v1/identity/oidc/.well-known/keys",
            audience=AUDIENCE,
        )
        validator = TokenValidator(policy, clock=clock)
        statuses: list[int] = []

        def secure_path(request: httpx.Request) -> httpx.Response:
            decision = validator.check_authorization(
                request.headers.get("authorization"), path=request.url.path
            )
            statuses.append(decision.status)
            return httpx.Response(204 if decision.ok else decision.status)

        auth = RefreshingAuth(source, clock=clock)
        try:
            with httpx.Client(transport=httpx.MockTransport(secure_path), auth=auth) as client:
                for _ in range(40):  # 40 x 50 s = 2000 s, more than six 300 s lifetimes
                    assert client.post("http://secure/config/x", json={}).status_code == 204
                    clock.advance(50)
        finally:
            validator.close()
            source.close()
        assert set(statuses) == {200}  # refreshed before expiry: never a 401
        assert 7 <= auth.fetches <= 8


# -- GceTokenSource: google-auth must be configured before it is imported -------------------
def test_gce_source_fails_clearly_when_google_auth_was_imported_first() -> None:
    result = run_gce_probe("imported-earlier", "127.0.0.1:8225")
    assert result.stdout.startswith("ERROR google-auth was already imported"), result.stdout
    assert "'127.0.0.1:9'" in result.stdout


def test_gce_source_refuses_conflicting_environment() -> None:
    result = run_gce_probe("env-conflict", "127.0.0.1:8225")
    assert result.stdout.startswith("ERROR GCE_METADATA_IP is set to '10.0.0.1:80'"), result.stdout


# -- RefreshingAuth -------------------------------------------------------------------------
class FakeSource:
    """Issues unsigned-looking JWTs with iat/exp from ``clock``; counts what happens."""

    def __init__(self, clock: Callable[[], float], ttl: float = 300) -> None:
        self.clock, self.ttl = clock, ttl
        self.issued = 0
        self.invalidated = 0
        self._lock = threading.Lock()

    def token(self, audience: str | None = None) -> str:
        with self._lock:
            self.issued += 1
            now = self.clock()
            payload = {"n": self.issued, "iat": now, "exp": now + self.ttl}
            return str(raw_token({"alg": "RS256"}, payload))

    def invalidate(self) -> None:
        self.invalidated += 1


def answering(status: int, calls: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status)

    return handler


def token_number(request: httpx.Request) -> int:
    token = request.headers["authorization"].removeprefix("Bearer ")
    return int(jwt.decode(token, options={"verify_signature": False})["n"])


def test_fake_source_is_a_token_source() -> None:
    assert isinstance(FakeSource(FakeClock()), TokenSource)


@pytest.mark.parametrize(
    ("ttl", "max_age", "refresh_after"),
    [(300, None, 270), (8, None, 6), (3600, 300, 270)],
    ids=["default-margin", "short-ttl", "max-age"],
)
def test_refresh_before_expiry(ttl: float, max_age: float | None, refresh_after: float) -> None:
    clock = FakeClock(start=1_000_000)
    source = FakeSource(clock, ttl=ttl)
    auth = RefreshingAuth(source, clock=clock, max_age_s=max_age)
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(token_number(request))
        return httpx.Response(200)

    transport = httpx.MockTransport(handler)
    with httpx.Client(transport=transport, auth=auth) as client:
        client.get("http://s/a")
        clock.advance(refresh_after - 0.5)
        client.get("http://s/b")
        clock.advance(1)
        client.get("http://s/c")
    assert seen == [1, 1, 2]


def test_retries_once_on_401_with_a_new_token_and_the_same_body() -> None:
    source = FakeSource(FakeClock())
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return httpx.Response(401 if token_number(request) == 1 else 200)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=RefreshingAuth(source)) as c:
        response = c.post("http://s/config", json={"rate": 5})
    assert response.status_code == 200
    assert bodies == [b'{"rate":5}', b'{"rate":5}']
    assert (source.issued, source.invalidated) == (2, 1)


def test_a_second_401_is_returned_not_retried() -> None:
    source = FakeSource(FakeClock())
    calls: list[httpx.Request] = []
    transport = httpx.MockTransport(answering(401, calls))
    with httpx.Client(transport=transport, auth=RefreshingAuth(source)) as client:
        assert client.get("http://s/x").status_code == 401
    assert len(calls) == 2


def test_403_is_not_retried() -> None:
    source = FakeSource(FakeClock())
    calls: list[httpx.Request] = []
    transport = httpx.MockTransport(answering(403, calls))
    with httpx.Client(transport=transport, auth=RefreshingAuth(source)) as client:
        assert client.get("http://s/x").status_code == 403
    assert (len(calls), source.issued) == (1, 1)


def test_concurrent_requests_share_one_token() -> None:
    source = FakeSource(FakeClock())
    auth = RefreshingAuth(source)
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    start = threading.Barrier(8)

    def worker() -> None:
        with httpx.Client(transport=transport, auth=auth) as client:
            start.wait()
            for _ in range(10):
                assert client.get("http://s/x").status_code == 200

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert source.issued == 1


def test_async_client_refreshes_on_401() -> None:
    source = FakeSource(FakeClock())

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401 if token_number(request) == 1 else 200)

    async def scenario() -> int:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, auth=RefreshingAuth(source)) as client:
            return (await client.get("http://s/x")).status_code

    assert asyncio.run(scenario()) == 200
    assert source.issued == 2


def test_opaque_tokens_are_fetched_every_time() -> None:
    class Opaque:
        issued = 0

        def token(self, audience: str | None = None) -> str:
            self.issued += 1
            return "opaque"

        def invalidate(self) -> None:
            pass

    source = Opaque()
    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with httpx.Client(transport=transport, auth=RefreshingAuth(source)) as client:
        client.get("http://s/1")
        client.get("http://s/2")
    assert source.issued == 2
