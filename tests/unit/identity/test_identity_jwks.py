"""The JWKS cache: warm path, rotation, rate limit, key removal, fail closed and recovery."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from identity_testkit import FakeClock, JwksServer, public_jwk

from identity import JwksCache, TokenValidator
from identity._jwks import parse_jwks

Sign = Callable[..., str]


def test_warm_cache_fetches_once(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer
) -> None:
    token = sign()
    for _ in range(200):
        assert validator.validate(token).ok
    assert jwks_server.fetches == 1


def test_rotation_is_picked_up_after_one_refetch(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer, keys: Any, mono: FakeClock
) -> None:
    assert validator.validate(sign()).ok
    jwks_server.document = {"keys": [public_jwk(keys.k1, "k1"), public_jwk(keys.k2, "k2")]}
    mono.advance(validator.policy.jwks_refetch_interval_s)
    assert validator.validate(sign(key=keys.k2, kid="k2")).ok
    assert jwks_server.fetches == 2


def test_unknown_kid_refetch_is_rate_limited(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer, mono: FakeClock
) -> None:
    assert validator.validate(sign()).ok
    mono.advance(validator.policy.jwks_refetch_interval_s)
    for n in range(50):
        assert validator.validate(sign(kid=f"made-up-{n}")).reason == "unknown kid"
    assert jwks_server.fetches == 2  # one refetch for the whole flood
    mono.advance(validator.policy.jwks_refetch_interval_s)
    assert validator.validate(sign(kid="made-up-again")).reason == "unknown kid"
    assert jwks_server.fetches == 3


def test_concurrent_unknown_kids_cause_one_refetch(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer, mono: FakeClock
) -> None:
    assert validator.validate(sign()).ok
    mono.advance(validator.policy.jwks_refetch_interval_s)
    tokens = [sign(kid=f"flood-{n}") for n in range(16)]
    start = threading.Barrier(len(tokens))
    reasons: list[str] = []

    def attack(token: str) -> None:
        start.wait()
        reasons.append(validator.validate(token).reason)

    threads = [threading.Thread(target=attack, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert reasons == ["unknown kid"] * len(tokens)
    assert jwks_server.fetches == 2


def test_removed_key_is_rejected_after_the_cache_lifetime(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer, keys: Any, mono: FakeClock
) -> None:
    token = sign()
    assert validator.validate(token).ok
    jwks_server.document = {"keys": [public_jwk(keys.k2, "k2")]}
    mono.advance(validator.policy.jwks_cache_s - 1)
    assert validator.validate(token).ok  # still within the bounded lifetime
    mono.advance(2)
    decision = validator.validate(token)
    assert decision.reason == "unknown kid"
    assert decision.status == 401


def test_cold_cache_fails_closed_when_jwks_is_down(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer
) -> None:
    jwks_server.status = 503
    decision = validator.check_authorization(f"Bearer {sign()}", path="/config/x")
    assert (decision.ok, decision.status, decision.reason) == (
        False,
        401,
        "signing keys unavailable",
    )


def test_fails_closed_when_the_cache_expires_and_recovers_by_itself(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer, mono: FakeClock
) -> None:
    token = sign()
    assert validator.validate(token).ok
    port = jwks_server.stop()  # connection refused from now on
    mono.advance(validator.policy.jwks_cache_s)
    assert validator.validate(token).reason == "signing keys unavailable"
    assert validator.validate(token).reason == "signing keys unavailable"  # rate-limited: no I/O
    jwks_server.start(port)
    assert validator.validate(token).reason == "signing keys unavailable"  # until the interval
    mono.advance(validator.policy.jwks_refetch_interval_s)
    assert validator.validate(token).ok


def test_unknown_kid_with_jwks_down_keeps_the_fresh_keys(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer, mono: FakeClock
) -> None:
    assert validator.validate(sign()).ok
    jwks_server.status = 500
    mono.advance(validator.policy.jwks_refetch_interval_s)
    assert validator.validate(sign(kid="new")).reason == "unknown kid"
    assert validator.validate(sign()).ok


def test_warm_after_outage(keys: Any, mono: FakeClock) -> None:
    server = JwksServer({"keys": [public_jwk(keys.k1, "k1")]}, status=503).start()
    cache = JwksCache(server.url, clock=mono)
    try:
        assert cache.warm() is False
        server.status = 200
        mono.advance(cache.min_refetch_interval_s)
        assert cache.warm() is True
        assert cache.get_key("k1") is not None
    finally:
        cache.close()
        server.stop()


def _cache_over(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> JwksCache:
    return JwksCache("http://jwks.test/keys", transport=httpx.MockTransport(handler), **kw)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, content=b"not json"), "invalid JWKS"),
        (httpx.Response(200, json={"nokeys": []}), "invalid JWKS"),
        (httpx.Response(302, headers={"Location": "http://evil.example/keys"}), "HTTP 302"),
        (httpx.Response(200, content=b"{" + b" " * 300_000 + b"}"), "larger than"),
    ],
    ids=["not-json", "not-jwks", "redirect-not-followed", "too-large"],
)
def test_bad_jwks_responses_fail_closed(response: httpx.Response, error: str) -> None:
    from identity import JwksUnavailableError

    cache = _cache_over(lambda request: response)
    with pytest.raises(JwksUnavailableError, match=error):
        cache.get_key("k1")
    cache.close()


def test_only_usable_rs256_keys_are_kept(keys: Any) -> None:
    good = public_jwk(keys.k1, "good")
    document = {
        "keys": [
            good,
            public_jwk(keys.small, "small-1024"),
            public_jwk(keys.k2, "enc", use="enc"),
            public_jwk(keys.k2, "es", alg="ES256"),
            {**public_jwk(keys.k2, "private"), "d": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            public_jwk(keys.k2, "dup"),
            public_jwk(keys.k1, "dup"),
            {k: v for k, v in public_jwk(keys.k2, "x").items() if k != "kid"},
            "garbage",
        ]
    }
    assert sorted(parse_jwks(document)) == ["good"]
