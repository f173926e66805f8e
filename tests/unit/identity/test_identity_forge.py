"""The token forge: valid() passes the validator, every broken variant is rejected for its reason.

A fake token source signs with ``k1`` (published by the fake JWKS). The forge never sees that key
unless a test hands it over as ``signing_key``: without it every re-signed variant fails on the
signature; with it each variant reaches, and fails, the check it is built for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from identity_testkit import AUDIENCE, ISSUER, SUBJECT, JwksServer, claims

from identity import Decision, TokenValidator
from pytest_observastack._forge import REMOVE, TokenFactory, print_token
from pytest_observastack._tokens import TokenSource

Sign = Callable[..., str]


class FakeSource:
    """Signs with the trusted ``k1``, like the real issuer; remembers what it issued."""

    def __init__(self, sign: Sign) -> None:
        self._sign = sign
        self.issued: list[str] = []
        self.closed = False

    def token(self, audience: str | None = None) -> str:
        token = self._sign(claims(aud=audience or AUDIENCE))
        self.issued.append(token)
        return token

    def invalidate(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def source(sign: Sign) -> FakeSource:
    return FakeSource(sign)


@pytest.fixture
def forge(source: FakeSource) -> TokenFactory:
    return TokenFactory(source, audience=AUDIENCE)


@pytest.fixture
def trusted_forge(source: FakeSource, keys: Any) -> TokenFactory:
    return TokenFactory(source, audience=AUDIENCE, signing_key=keys.k1)


def assert_rejected(decision: Decision, reason: str, token: str) -> None:
    __tracebackhide__ = True
    assert not decision.ok
    assert decision.status == 401, decision
    assert reason in decision.reason, decision.reason
    challenge = decision.www_authenticate()
    assert challenge is not None
    assert challenge.startswith('Bearer error="invalid_token"')
    for piece in token.split("."):
        if len(piece) > 8:
            assert piece not in decision.reason
            assert piece not in challenge


def check(validator: TokenValidator, token: str) -> Decision:
    return validator.check_authorization(f"Bearer {token}", path="/config/limits")


def unverified(token: str) -> tuple[dict[str, Any], Any]:
    head, payload, _ = token.split(".")
    decode = base64.urlsafe_b64decode

    def part(segment: str) -> Any:
        return json.loads(decode(segment + "=" * (-len(segment) % 4)))

    return part(head), part(payload)


def test_the_fake_source_is_a_token_source(source: FakeSource) -> None:
    assert isinstance(source, TokenSource)


def test_valid_tokens_pass(forge: TokenFactory, validator: TokenValidator) -> None:
    for _ in range(3):
        decision = check(validator, forge.valid())
        assert decision.ok, decision.reason
        assert decision.subject == SUBJECT


# -- without any trusted key: each variant is rejected, at the first check it cannot pass ------
UNTRUSTED: list[tuple[str, Callable[[TokenFactory], str], str]] = [
    ("alg_none", lambda f: f.alg_none(), "algorithm not allowed: none"),
    ("attacker_signed", lambda f: f.attacker_signed(), "signature verification failed"),
    ("attacker_signed_as_admin", lambda f: f.attacker_signed(sub="admin"),
     "signature verification failed"),
    ("tampered", lambda f: f.tampered(), "signature verification failed"),
    ("tampered_audience", lambda f: f.tampered(aud="x"), "signature verification failed"),
    ("truncated", lambda f: f.truncated(), "expected 3 segments, got 2"),
    ("bad_base64", lambda f: f.bad_base64(), "segments are not base64url"),
    ("bad_json", lambda f: f.bad_json(), "header is not base64url JSON"),
    ("non_object_payload", lambda f: f.non_object_payload(), "signature verification failed"),
    ("header_jku", lambda f: f.with_header(jku="http://127.0.0.1:9/keys"),
     "signature verification failed"),
    ("header_crit", lambda f: f.with_header(crit=["exp"]), "unsupported critical header"),
    ("header_alg_rs512", lambda f: f.with_header(alg="RS512"), "algorithm not allowed: RS512"),
    ("header_unknown_kid", lambda f: f.with_header(kid="no-such-key"), "unknown kid"),
    ("header_kid_path", lambda f: f.with_header(kid="../../../dev/null"), "unknown kid"),
    ("header_kid_quote", lambda f: f.with_header(kid="k1' OR '1'='1"), "invalid kid"),
    ("header_kid_number", lambda f: f.with_header(kid=7), "invalid kid"),
    ("header_kid_removed", lambda f: f.with_header(kid=REMOVE), "missing kid"),
    ("expired", lambda f: f.expired(), "signature verification failed"),
    ("not_yet_valid", lambda f: f.not_yet_valid(), "signature verification failed"),
    ("issued_in_future", lambda f: f.issued_in_future(), "signature verification failed"),
    ("too_long_lived", lambda f: f.too_long_lived(), "signature verification failed"),
    ("wrong_issuer", lambda f: f.wrong_issuer(), "signature verification failed"),
    ("issuer_prefix", lambda f: f.issuer_prefix(), "signature verification failed"),
    ("wrong_audience", lambda f: f.wrong_audience(), "signature verification failed"),
    ("missing_exp", lambda f: f.missing_claim("exp"), "signature verification failed"),
    ("oversized", lambda f: f.oversized(8200), "token too large"),
    ("oversized_header", lambda f: f.oversized(9000), "authorization header too large"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "reason"), [case[1:] for case in UNTRUSTED], ids=[case[0] for case in UNTRUSTED]
)
def test_untrusted_variant_is_rejected(
    forge: TokenFactory, validator: TokenValidator, make: Callable[[TokenFactory], str], reason: str
) -> None:
    token = make(forge)
    assert_rejected(check(validator, token), reason, token)


# -- with a key the validator trusts: each variant fails the check it is built for -------------
TRUSTED: list[tuple[str, Callable[[TokenFactory], str], str]] = [
    ("expired", lambda f: f.expired(), "token expired"),
    ("not_yet_valid", lambda f: f.not_yet_valid(), "token not yet valid (nbf)"),
    ("issued_in_future", lambda f: f.issued_in_future(), "token issued in the future (iat)"),
    ("too_long_lived", lambda f: f.too_long_lived(), "token lifetime 86400s exceeds policy 300s"),
    ("too_long_lived_301", lambda f: f.too_long_lived(301), "exceeds policy 300s"),
    ("wrong_issuer", lambda f: f.wrong_issuer(), "wrong issuer"),
    ("issuer_prefix", lambda f: f.issuer_prefix(), "wrong issuer"),
    ("wrong_audience", lambda f: f.wrong_audience(), "wrong audience"),
    ("missing_exp", lambda f: f.missing_claim("exp"), "missing required claim: exp"),
    ("missing_iat", lambda f: f.missing_claim("iat"), "missing required claim: iat"),
    ("missing_aud", lambda f: f.missing_claim("aud"), "missing required claim: aud"),
    ("missing_iss", lambda f: f.missing_claim("iss"), "missing required claim: iss"),
    ("missing_sub", lambda f: f.missing_claim("sub"), "missing required claim: sub"),
    ("non_object_payload", lambda f: f.non_object_payload(), "payload is not a JSON object"),
    ("header_crit", lambda f: f.with_header(crit=["exp"], exp=1), "unsupported critical header"),
    ("header_typ", lambda f: f.with_header(typ="at+jwt"), "unsupported token type"),
    ("header_x5u_unknown_kid",
     lambda f: f.with_header(x5u="http://127.0.0.1:9/cert.pem", kid="evil"), "unknown kid"),
    ("attacker_signed", lambda f: f.attacker_signed(), "signature verification failed"),
    ("tampered", lambda f: f.tampered(), "signature verification failed"),
    ("oversized", lambda f: f.oversized(8193), "token too large"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "reason"), [case[1:] for case in TRUSTED], ids=[case[0] for case in TRUSTED]
)
def test_trusted_variant_fails_its_own_check(
    trusted_forge: TokenFactory,
    validator: TokenValidator,
    make: Callable[[TokenFactory], str],
    reason: str,
) -> None:
    token = make(trusted_forge)
    assert_rejected(check(validator, token), reason, token)


def test_trusted_key_is_only_used_when_given(
    trusted_forge: TokenFactory, validator: TokenValidator
) -> None:
    # Same claims as valid(), re-signed with the trusted key: accepted, so the rejections above
    # come from the broken part alone.
    assert check(validator, trusted_forge.with_header()).ok
    assert check(validator, trusted_forge.attacker_signed()).reason == (
        "signature verification failed"
    )


# -- what the variants look like --------------------------------------------------------------
def test_claim_variants_differ_from_a_valid_token_in_one_way(forge: TokenFactory) -> None:
    header, payload = unverified(forge.expired())
    assert header["kid"] == "k1"
    assert payload["exp"] < payload["iat"] + 301
    assert {payload["iss"], payload["aud"], payload["sub"]} == {ISSUER, AUDIENCE, SUBJECT}
    assert "exp" not in unverified(forge.missing_claim("exp"))[1]
    assert unverified(forge.issuer_prefix())[1]["iss"].startswith(ISSUER)
    assert unverified(forge.non_object_payload())[1][0]["sub"] == SUBJECT


def test_alg_none_has_an_empty_signature(forge: TokenFactory) -> None:
    token = forge.alg_none()
    assert token.endswith(".")
    assert unverified(token)[0]["alg"] == "none"


def test_hs256_is_keyed_with_the_public_pem(
    forge: TokenFactory, validator: TokenValidator, jwks_server: JwksServer
) -> None:
    token = forge.hs256_with_public_key(json.dumps(jwks_server.document))
    assert_rejected(check(validator, token), "algorithm not allowed: HS256", token)
    # It is the real attack: the HMAC verifies with the issuer's public PEM as the secret.
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwks_server.document["keys"][0]))
    assert isinstance(public, RSAPublicKey)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature


def test_hs256_accepts_a_parsed_jwks(forge: TokenFactory, jwks_server: JwksServer) -> None:
    assert unverified(forge.hs256_with_public_key(jwks_server.document))[0]["alg"] == "HS256"


def test_tampered_keeps_the_original_signature(forge: TokenFactory, source: FakeSource) -> None:
    token = forge.tampered()
    original = source.issued[-1]
    assert token.rsplit(".", 1)[1] == original.rsplit(".", 1)[1]
    assert token.split(".")[0] == original.split(".")[0]
    assert unverified(token)[1]["sub"] == f"{SUBJECT}-admin"


def test_jku_header_is_never_fetched(
    forge: TokenFactory, validator: TokenValidator, attacker_server: JwksServer
) -> None:
    attacker_server.document = forge.attacker_jwks("k1")
    for name in ("jku", "x5u"):
        token = forge.with_header(**{name: attacker_server.url})
        assert unverified(token)[0][name] == attacker_server.url
        assert_rejected(check(validator, token), "signature verification failed", token)
    assert attacker_server.fetches == 0


def test_oversized_is_at_least_the_size_asked(forge: TokenFactory) -> None:
    for size in (100, 8193, 20_000):
        assert len(forge.oversized(size)) >= size
    assert len(forge.oversized(20_000)) < 20_100


def test_attacker_key_is_not_the_issuers(forge: TokenFactory, keys: Any) -> None:
    assert forge.attacker_key.public_key().public_numbers() != (
        keys.k1.public_key().public_numbers()
    )
    assert forge.attacker_key is forge.attacker_key  # generated once


def test_print_token_prints_a_fresh_token(
    source: FakeSource, validator: TokenValidator, capsys: pytest.CaptureFixture[str]
) -> None:
    class FakeStack:
        def token_source(self) -> FakeSource:
            return source

    token = print_token(FakeStack(), None)  # type: ignore[arg-type]
    assert capsys.readouterr().out == token + "\n"
    assert check(validator, token).ok
    assert source.closed
