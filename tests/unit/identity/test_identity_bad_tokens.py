"""Every bad token is rejected with the right status and reason, and the token is never echoed."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from identity_testkit import (
    AUDIENCE,
    DROP,
    ISSUER,
    SUBJECT,
    FakeClock,
    JwksServer,
    b64url,
    claims,
    raw_token,
)

from identity import Decision, TokenValidator

Sign = Callable[..., str]


def assert_rejected(decision: Decision, reason: str, token: str = "", status: int = 401) -> None:
    __tracebackhide__ = True
    assert not decision.ok
    assert decision.status == status, decision
    assert reason in decision.reason, decision.reason
    challenge = decision.www_authenticate()
    assert challenge is not None
    error = "insufficient_scope" if status == 403 else "invalid_token"
    assert challenge.startswith(f'Bearer error="{error}", error_description="')
    if token:
        for piece in token.split("."):
            if len(piece) > 8:
                assert piece not in decision.reason
                assert piece not in challenge


def check(validator: TokenValidator, token: str) -> Decision:
    return validator.check_authorization(f"Bearer {token}", path="/config/limits")


# -- the good token, so that every rejection below differs from it in one way only -----------
def test_valid_token_is_accepted(validator: TokenValidator, sign: Sign) -> None:
    decision = check(validator, sign())
    assert decision.ok
    assert decision.status == 200
    assert decision.subject == SUBJECT
    assert decision.claims["aud"] == AUDIENCE
    assert decision.www_authenticate() is None


def test_scheme_is_case_insensitive(validator: TokenValidator, sign: Sign) -> None:
    assert validator.check_authorization(f"bearer  {sign()}", path="/x").ok


# -- the Authorization header ---------------------------------------------------------------
def test_no_token(validator: TokenValidator) -> None:
    assert_rejected(validator.check_authorization(None, path="/config/x"), "missing bearer token")


def test_empty_header(validator: TokenValidator) -> None:
    assert_rejected(validator.check_authorization("", path="/x"), "missing bearer token")


def test_scheme_without_token(validator: TokenValidator) -> None:
    assert_rejected(validator.check_authorization("Bearer", path="/x"), "missing bearer token")


def test_wrong_scheme(validator: TokenValidator, sign: Sign) -> None:
    token = sign()
    decision = validator.check_authorization(f"Basic {token}", path="/x")
    assert_rejected(decision, "unsupported authorization scheme", token)


def test_two_tokens_in_one_header(validator: TokenValidator, sign: Sign) -> None:
    token = sign()
    decision = validator.check_authorization(f"Bearer {token} {token}", path="/x")
    assert_rejected(decision, "more than one token", token)


def test_two_tokens_comma_joined(validator: TokenValidator, sign: Sign) -> None:
    token = sign()
    decision = validator.check_authorization(f"Bearer {token}, Bearer {token}", path="/x")
    assert_rejected(decision, "more than one token", token)


def test_two_authorization_headers(validator: TokenValidator, sign: Sign) -> None:
    token = sign()
    decision = validator.check_authorization([f"Bearer {token}", f"Bearer {token}"], path="/x")
    assert_rejected(decision, "more than one Authorization header", token)


def test_oversized_token(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(padding="x" * 9000))
    assert_rejected(validator.validate(token), "token too large", token)


def test_oversized_header(validator: TokenValidator) -> None:
    decision = validator.check_authorization("Bearer " + "a" * 20_000, path="/x")
    assert_rejected(decision, "authorization header too large")


# -- shape ----------------------------------------------------------------------------------
def test_two_segments(validator: TokenValidator, sign: Sign) -> None:
    token = sign().rsplit(".", 1)[0]
    assert_rejected(check(validator, token), "expected 3 segments, got 2", token)


def test_five_segments_jwe(validator: TokenValidator) -> None:
    assert_rejected(check(validator, "a.b.c.d.e"), "expected 3 segments, got 5")


def test_bad_base64_characters(validator: TokenValidator, sign: Sign) -> None:
    header, payload, signature = sign().split(".")
    token = f"{header}.{payload[:10]}!!!{payload[10:]}.{signature}"
    assert_rejected(check(validator, token), "segments are not base64url", token)


def test_bad_base64_length(validator: TokenValidator, sign: Sign) -> None:
    _, payload, signature = sign().split(".")
    token = f"abcde.{payload}.{signature}"  # 5 base64 characters cannot encode whole bytes
    assert_rejected(check(validator, token), "header is not base64url JSON", token)


def test_header_not_json(validator: TokenValidator, sign: Sign) -> None:
    _, payload, signature = sign().split(".")
    token = f"{b64url(b'{not json')}.{payload}.{signature}"
    assert_rejected(check(validator, token), "header is not base64url JSON", token)


def test_header_not_an_object(validator: TokenValidator) -> None:
    token = raw_token(["RS256"], claims())
    assert_rejected(check(validator, token), "header is not a JSON object", token)


def test_payload_not_json(validator: TokenValidator, keys: Any) -> None:
    token = jwt.api_jws.encode(b"{not json", keys.k1, algorithm="RS256", headers={"kid": "k1"})
    assert_rejected(check(validator, token), "payload is not JSON", token)


def test_payload_not_an_object(validator: TokenValidator, keys: Any) -> None:
    token = jwt.api_jws.encode(b"[1, 2, 3]", keys.k1, algorithm="RS256", headers={"kid": "k1"})
    assert_rejected(check(validator, token), "payload is not a JSON object", token)


# -- JOSE header ----------------------------------------------------------------------------
def test_alg_none(validator: TokenValidator) -> None:
    token = raw_token({"alg": "none", "kid": "k1"}, claims(), signature=b"")
    assert token.endswith(".")
    assert_rejected(check(validator, token), "algorithm not allowed: none", token)


def test_alg_missing(validator: TokenValidator) -> None:
    token = raw_token({"kid": "k1"}, claims())
    assert_rejected(check(validator, token), "algorithm not allowed", token)


def test_hs256_signed_with_the_public_key(
    validator: TokenValidator, keys: Any, jwks_server: JwksServer
) -> None:
    pem = keys.k1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = raw_token({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims()).rsplit(".", 1)
    mac = hmac.new(pem, signing_input[0].encode(), hashlib.sha256).digest()
    token = f"{signing_input[0]}.{b64url(mac)}"
    assert_rejected(check(validator, token), "algorithm not allowed: HS256", token)
    assert jwks_server.fetches == 0  # rejected before any key lookup


@pytest.mark.parametrize("alg", ["RS512", "PS256"])
def test_algorithm_not_allowed(validator: TokenValidator, sign: Sign, alg: str) -> None:
    token = sign(alg=alg)
    assert_rejected(check(validator, token), f"algorithm not allowed: {alg}", token)


def test_unknown_kid(
    validator: TokenValidator, sign: Sign, jwks_server: JwksServer, mono: FakeClock
) -> None:
    assert check(validator, sign()).ok  # warm cache
    mono.advance(validator.policy.jwks_refetch_interval_s)
    token = sign(kid="zzz")
    assert_rejected(check(validator, token), "unknown kid", token)
    assert jwks_server.fetches == 2  # the first fill, then exactly one refetch


def test_missing_kid(validator: TokenValidator, sign: Sign) -> None:
    token = sign(kid=DROP)
    assert_rejected(check(validator, token), "missing kid", token)


@pytest.mark.parametrize(
    "kid",
    [123, None, "", ["k1"], {"k": 1}, "k" * 200, "k1\x00", "k1\n", "k1' OR '1'='1", "é"],
    ids=["int", "null", "empty", "list", "object", "long", "nul", "newline", "sql", "unicode"],
)
def test_odd_kid_values(
    validator: TokenValidator, jwks_server: JwksServer, keys: Any, kid: object
) -> None:
    token = raw_token({"alg": "RS256", "kid": kid}, claims())
    assert_rejected(check(validator, token), "invalid kid", token)
    assert jwks_server.fetches == 0  # odd kid values never reach the JWKS endpoint


@pytest.mark.parametrize("kid", ["../../etc/passwd", "http://evil.example/k1", "K1"])
def test_odd_but_well_formed_kid_is_unknown(
    validator: TokenValidator, sign: Sign, kid: str
) -> None:
    token = sign(kid=kid)
    assert_rejected(check(validator, token), "unknown kid", token)


def test_signature_from_another_key(validator: TokenValidator, sign: Sign, keys: Any) -> None:
    token = sign(key=keys.k2, kid="k1")
    assert_rejected(check(validator, token), "signature verification failed", token)


def test_tampered_payload(validator: TokenValidator, sign: Sign) -> None:
    header, _, signature = sign().split(".")
    forged = b64url(json.dumps(claims(sub="admin")).encode())
    token = f"{header}.{forged}.{signature}"
    assert_rejected(check(validator, token), "signature verification failed", token)


def test_unknown_crit(validator: TokenValidator, sign: Sign) -> None:
    token = sign(crit=["exp-ext"], **{"exp-ext": 1})
    assert_rejected(check(validator, token), "unsupported critical header", token)


def test_b64_false_header(validator: TokenValidator) -> None:
    token = raw_token({"alg": "RS256", "kid": "k1", "b64": False, "crit": ["b64"]}, claims())
    assert_rejected(check(validator, token), "unsupported critical header", token)


def test_unexpected_typ(validator: TokenValidator, sign: Sign) -> None:
    token = sign(typ="at+jwt")
    assert_rejected(check(validator, token), "unsupported token type", token)


@pytest.mark.parametrize("header", ["jku", "x5u"])
def test_key_url_headers_are_never_fetched(
    validator: TokenValidator,
    sign: Sign,
    keys: Any,
    attacker_server: JwksServer,
    jwks_server: JwksServer,
    header: str,
) -> None:
    evil_kid = sign(key=keys.attacker, kid="evil", **{header: attacker_server.url})
    assert_rejected(check(validator, evil_kid), "unknown kid", evil_kid)
    our_kid = sign(key=keys.attacker, kid="k1", **{header: attacker_server.url})
    assert_rejected(check(validator, our_kid), "signature verification failed", our_kid)
    assert attacker_server.fetches == 0
    assert jwks_server.fetches >= 1  # only our own JWKS URL was used


def test_embedded_jwk_header_is_ignored(validator: TokenValidator, sign: Sign, keys: Any) -> None:
    from identity_testkit import public_jwk

    token = sign(key=keys.attacker, kid="k1", jwk=public_jwk(keys.attacker, "k1"))
    assert_rejected(check(validator, token), "signature verification failed", token)


# -- claims ---------------------------------------------------------------------------------
def test_expired(validator: TokenValidator, sign: Sign) -> None:
    now = int(time.time())
    token = sign(claims(iat=now - 400, exp=now - 100))
    assert_rejected(check(validator, token), "token expired", token)


def test_expired_within_leeway_is_accepted(validator: TokenValidator, sign: Sign) -> None:
    now = int(time.time())
    assert check(validator, sign(claims(iat=now - 300, exp=now - 2))).ok


def test_nbf_in_the_future(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(nbf=int(time.time()) + 60))
    assert_rejected(check(validator, token), "not yet valid (nbf)", token)


def test_iat_in_the_future(validator: TokenValidator, sign: Sign) -> None:
    now = int(time.time())
    token = sign(claims(iat=now + 60, exp=now + 300))
    assert_rejected(check(validator, token), "issued in the future (iat)", token)


def test_lifetime_longer_than_policy(validator: TokenValidator, sign: Sign) -> None:
    now = int(time.time())
    token = sign(claims(iat=now, exp=now + 3600))
    assert_rejected(check(validator, token), "token lifetime 3600s exceeds policy 300s", token)


def test_lifetime_equal_to_policy_is_accepted(validator: TokenValidator, sign: Sign) -> None:
    now = int(time.time())
    assert check(validator, sign(claims(iat=now, exp=now + 300))).ok


def test_missing_exp(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(exp=DROP))
    assert_rejected(check(validator, token), "missing required claim: exp", token)


def test_missing_iat(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(iat=DROP))
    assert_rejected(check(validator, token), "missing required claim: iat", token)


@pytest.mark.parametrize("value", ["tomorrow", True, None, 1e400, 10**400])
def test_exp_not_a_finite_number(validator: TokenValidator, keys: Any, value: object) -> None:
    payload = json.dumps(claims(exp=0)).replace('"exp": 0', f'"exp": {json.dumps(value)}')
    if value == 10**400 or value == 1e400:
        payload = payload.replace('"exp": 1e+400', '"exp": 1e400')
    token = jwt.api_jws.encode(payload.encode(), keys.k1, algorithm="RS256", headers={"kid": "k1"})
    assert_rejected(check(validator, token), "invalid exp claim", token)


def test_wrong_issuer(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(iss="https://evil.example/v1/identity/oidc"))
    assert_rejected(check(validator, token), "wrong issuer", token)


@pytest.mark.parametrize(
    "issuer",
    [ISSUER + "/evil", ISSUER + "/", ISSUER[:-4], ISSUER.upper(), " " + ISSUER],
    ids=["suffix", "slash", "prefix", "case", "space"],
)
def test_issuer_prefix_match_is_not_enough(
    validator: TokenValidator, sign: Sign, issuer: str
) -> None:
    token = sign(claims(iss=issuer))
    assert_rejected(check(validator, token), "wrong issuer", token)


def test_wrong_audience(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(aud="https://other-service.example"))
    assert_rejected(check(validator, token), "wrong audience", token)


def test_missing_audience(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(aud=DROP))
    assert_rejected(check(validator, token), "missing required claim: aud", token)


def test_list_valued_audience_is_rejected(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(aud=[AUDIENCE]))
    assert_rejected(check(validator, token), "audience must be a single string", token)


def test_missing_subject(validator: TokenValidator, sign: Sign) -> None:
    token = sign(claims(sub=DROP))
    assert_rejected(check(validator, token), "missing required claim: sub", token)


@pytest.mark.parametrize("sub", ["", "a\r\nX-Injected: 1", 42, "x" * 300])
def test_invalid_subject(validator: TokenValidator, sign: Sign, sub: object) -> None:
    token = sign(claims(sub=sub))
    decision = check(validator, token)
    assert_rejected(decision, "invalid sub claim", token)
    assert decision.subject is None  # never hand a malformed subject to logs or headers


# -- subject allow-list and the gcp profile -------------------------------------------------
def test_subject_not_on_allow_list_is_403(
    make_validator: Callable[..., TokenValidator], sign: Sign
) -> None:
    validator = make_validator(allowed_subjects=frozenset({"someone-else"}))
    token = sign()
    decision = check(validator, token)
    assert_rejected(decision, "subject not allowed", token, status=403)
    assert decision.subject == SUBJECT  # the caller is known, just not allowed


def test_subject_allowed_by_verified_email(
    make_validator: Callable[..., TokenValidator], sign: Sign
) -> None:
    validator = make_validator(allowed_subjects=frozenset({"cp@example.iam"}))
    assert check(validator, sign(claims(email="cp@example.iam", email_verified=True))).ok
    token = sign(claims(email="cp@example.iam", email_verified=False))
    assert_rejected(check(validator, token), "subject not allowed", token, status=403)


def test_gcp_profile_rejects_old_tokens(
    make_validator: Callable[..., TokenValidator], sign: Sign
) -> None:
    validator = make_validator(
        profile="gcp", max_lifetime_s=3600, max_age_s=300, allowed_subjects=frozenset({SUBJECT})
    )
    now = int(time.time())
    assert check(validator, sign(claims(iat=now - 10, exp=now + 3590))).ok
    token = sign(claims(iat=now - 400, exp=now + 3200))
    assert_rejected(check(validator, token), "token too old", token)
