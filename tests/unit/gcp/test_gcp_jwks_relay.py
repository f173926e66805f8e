"""The JWKS relay: one upstream, rate-limited refreshes, bounded staleness, fail closed.

In-process, on 127.0.0.1 ephemeral ports; the upstream is the metadata emulator, as in the local
GCP simulation, and a real ``TokenValidator`` (gcp profile) reads the relayed keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from gcp.jwks_relay import GOOGLE_CERTS_URL, ConfigError, JwksRelay, JwksRelayServer, RelaySettings
from gcp.metadata_emulator import GOOGLE_ISSUER, MetadataEmulator, MetadataEmulatorServer
from identity import TokenValidator, ValidationPolicy

UPSTREAM = "http://upstream.invalid/certs"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A scripted upstream: serves ``body`` or raises ``error``; counts calls."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self, url: str) -> bytes:
        assert url == UPSTREAM
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.body


@pytest.fixture(scope="module")
def emulator() -> MetadataEmulator:
    return MetadataEmulator()


@pytest.fixture
def upstream(emulator: MetadataEmulator) -> Upstream:
    return Upstream(json.dumps(emulator.jwks()).encode())


def relay(upstream: Upstream, clock: Clock) -> JwksRelay:
    settings = RelaySettings(upstream=UPSTREAM, min_fetch_interval_s=5, max_stale_s=60)
    return JwksRelay(settings, fetch=upstream, clock=clock)


def test_serves_the_upstream_keys_and_rate_limits_fetches(
    upstream: Upstream, emulator: MetadataEmulator
) -> None:
    clock = Clock()
    subject = relay(upstream, clock)
    assert subject.handle("/oauth2/v3/certs") == (200, json.dumps(emulator.jwks()).encode())
    for _ in range(10):
        assert subject.handle("/oauth2/v3/certs")[0] == 200
    assert upstream.calls == 1
    clock.now += 5
    subject.handle("/oauth2/v3/certs")
    assert upstream.calls == 2


def test_a_failing_upstream_is_bridged_then_fails_closed(upstream: Upstream) -> None:
    clock = Clock()
    subject = relay(upstream, clock)
    assert subject.handle("/healthz") == (200, b'{"status":"ok"}')
    upstream.error = httpx.ConnectError("refused")
    clock.now += 59
    assert subject.handle("/oauth2/v3/certs")[0] == 200  # stale but within max_stale_s
    clock.now += 1
    status, body = subject.handle("/oauth2/v3/certs")
    assert status == 503
    assert json.loads(body)["detail"] == "ConnectError: refused"
    assert subject.handle("/healthz")[0] == 503
    upstream.error = None
    clock.now += 5
    assert subject.handle("/oauth2/v3/certs")[0] == 200  # recovers by itself


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"<html>", "JSONDecodeError"), (b'{"keys": "x"}', "not a JWKS document"),
     (b'{"keys": []}', "no usable RS256 key")],
)  # fmt: skip
def test_what_is_not_a_usable_jwks_is_not_relayed(body: bytes, reason: str) -> None:
    upstream = Upstream(body)
    subject = relay(upstream, Clock())
    status, answer = subject.handle("/oauth2/v3/certs")
    assert status == 503
    assert reason in json.loads(answer)["detail"]


def test_private_key_members_are_never_passed_on(emulator: MetadataEmulator) -> None:
    document = emulator.jwks()
    leaked = {**document["keys"][0], "kid": "leaked", "d": "secret"}
    upstream = Upstream(json.dumps({"keys": [*document["keys"], leaked]}).encode())
    status, body = relay(upstream, Clock()).handle("/oauth2/v3/certs")
    assert status == 200
    assert [key["kid"] for key in json.loads(body)["keys"]] == [emulator.kid]


def test_only_the_certs_path_and_health_are_served(upstream: Upstream) -> None:
    subject = relay(upstream, Clock())
    for path in ("/", "/oauth2/v3/certs/../x", "/computeMetadata/v1/"):
        assert subject.handle(path)[0] == 404
    assert upstream.calls == 0


def test_settings() -> None:
    assert RelaySettings.from_env({}).upstream == GOOGLE_CERTS_URL
    with pytest.raises(ConfigError, match="JWKS_RELAY_UPSTREAM must be an http"):
        RelaySettings.from_env({"JWKS_RELAY_UPSTREAM": "file:///etc/passwd"})
    with pytest.raises(ConfigError, match="MIN_FETCH_INTERVAL_S < JWKS_RELAY_MAX_STALE_S"):
        RelaySettings.from_env({"JWKS_RELAY_MAX_STALE_S": "1"})
    with pytest.raises(ConfigError, match="invalid JWKS relay environment"):
        RelaySettings.from_env({"JWKS_RELAY_PORT": "http"})


@pytest.fixture
def chain() -> Iterator[tuple[MetadataEmulatorServer, JwksRelayServer]]:
    """Emulator -> relay over real sockets, as in compose.gcp-sim.yaml."""
    with MetadataEmulatorServer() as metadata:
        settings = RelaySettings(upstream=metadata.certs_url, port=0)
        server = JwksRelayServer(settings).start()
        try:
            yield metadata, server
        finally:
            server.stop()


def test_a_gcp_profile_validator_reads_the_relayed_keys(
    chain: tuple[MetadataEmulatorServer, JwksRelayServer],
) -> None:
    metadata, server = chain
    emulator = metadata.emulator
    policy = ValidationPolicy(
        issuer=GOOGLE_ISSUER, jwks_url=server.url + "/oauth2/v3/certs", audience="aud",
        profile="gcp", max_lifetime_s=3600, max_age_s=300,
        allowed_subjects=frozenset({emulator.settings.email}),
    )  # fmt: skip
    validator = TokenValidator(policy)
    try:
        assert validator.validate(emulator.mint_id_token("aud")).status == 200
    finally:
        validator.close()
    response = httpx.get(server.url + "/oauth2/v3/certs", trust_env=False)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
