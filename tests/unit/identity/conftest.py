"""Fixtures for the identity unit tests: keys, JWKS servers that count fetches, a token factory.

Everything runs in-process on 127.0.0.1 ephemeral ports; no Docker. Plain helpers live in
``identity_testkit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from identity_testkit import DROP, FakeClock, JwksServer, claims, make_policy, public_jwk

from identity import JwksCache, TokenValidator


@dataclass(frozen=True)
class Keys:
    k1: rsa.RSAPrivateKey
    k2: rsa.RSAPrivateKey
    attacker: rsa.RSAPrivateKey
    small: rsa.RSAPrivateKey


@pytest.fixture(scope="session")
def keys() -> Keys:
    def make(bits: int = 2048) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)

    return Keys(k1=make(), k2=make(), attacker=make(), small=make(1024))


@pytest.fixture
def jwks_server(keys: Keys) -> Iterator[JwksServer]:
    server = JwksServer({"keys": [public_jwk(keys.k1, "k1")]}).start()
    yield server
    server.stop()


@pytest.fixture
def attacker_server(keys: Keys) -> Iterator[JwksServer]:
    server = JwksServer({"keys": [public_jwk(keys.attacker, "evil")]}).start()
    yield server
    server.stop()


@pytest.fixture
def mono() -> FakeClock:
    """The JWKS cache's monotonic clock, moved by hand."""
    return FakeClock(start=1000.0)


@pytest.fixture
def make_validator(
    jwks_server: JwksServer, mono: FakeClock
) -> Iterator[Callable[..., TokenValidator]]:
    made: list[TokenValidator] = []

    def factory(**policy_overrides: Any) -> TokenValidator:
        policy = make_policy(jwks_server.url, **policy_overrides)
        cache = JwksCache(
            policy.jwks_url,
            max_age_s=policy.jwks_cache_s,
            min_refetch_interval_s=policy.jwks_refetch_interval_s,
            clock=mono,
        )
        validator = TokenValidator(policy, jwks=cache)
        made.append(validator)
        return validator

    yield factory
    for validator in made:
        validator.close()


@pytest.fixture
def validator(make_validator: Callable[..., TokenValidator]) -> TokenValidator:
    return make_validator()


@pytest.fixture
def sign(keys: Keys) -> Callable[..., str]:
    """sign(claims=None, key=keys.k1, kid="k1", **header) -> an RS256 JWT."""

    def factory(
        payload: dict[str, Any] | None = None,
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: Any = "k1",
        alg: str = "RS256",
        **header: Any,
    ) -> str:
        headers: dict[str, Any] = {"kid": kid, **header}
        if kid is DROP:
            headers.pop("kid")
        return jwt.encode(
            claims() if payload is None else payload, key or keys.k1, algorithm=alg,
            headers=headers,
        )  # fmt: skip

    return factory
