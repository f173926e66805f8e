"""Forged tokens for tests and security labs: one good token, and every way to spoil it.

Data in: a ``TokenSource`` (the real issuer) and the audience the verifier expects. Data out:
compact JWTs. ``valid()`` comes straight from the source; every other variant is derived from a
fresh valid token *without any trusted key*: re-signed by an RSA key generated here (the
attacker's), or with its header, payload or signature mangled. A verifier must reject every one of
them; each method's docstring says why.

Claim variants (``expired()``, ``wrong_issuer()``, ...) keep the real ``kid``, so without a trusted
key they fail on the signature. A lab or unit test that owns a key the verifier trusts (a fake
JWKS) passes it as ``signing_key``: the claim and header variants are then signed with it and are
rejected for their own reason. Tokens with bad claims *and* a genuine signature from the real
issuer come from the issuer itself (e.g. a Vault role with another ``client_id``).

``print_token(stack, audience)`` is the ``observastack token`` verb: a fresh token on stdout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

from pytest_observastack._errors import TokenError
from pytest_observastack._tokens import TokenSource

if TYPE_CHECKING:
    from pytest_observastack._stack import Stack

__all__ = ["REMOVE", "TokenFactory", "print_token"]


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Any = _Remove()
"""Pass as an override value to drop that header parameter or claim."""

Signer = Callable[[bytes], bytes]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_BROKEN_JSON_HEADER = b64url(b'{"alg":"RS256","kid":')


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in overrides.items():
        if value is REMOVE:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def _rs256(key: rsa.RSAPrivateKey) -> Signer:
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _compact(header: object, payload: object, sign: Signer) -> str:
    signing_input = f"{b64url(_json(header))}.{b64url(_json(payload))}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


class TokenFactory:
    """Good and deliberately broken bearer tokens for one audience.

    ``signing_key`` (optional) is a key the verifier under test trusts; without it, every
    re-signed variant is signed by a key generated here that nobody trusts.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        audience: str,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        self.source = source
        self.audience = audience
        self._signing_key = signing_key
        self._attacker_key: rsa.RSAPrivateKey | None = None

    # -- the good one, and its parts --------------------------------------------------------
    def valid(self) -> str:
        """A fresh token from the source: every verifier configured for the audience accepts it."""
        return self.source.token(self.audience)

    def _parts(self) -> tuple[dict[str, Any], dict[str, Any], str]:
        token = self.valid()
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenError(f"the token source returned an undecodable JWT ({exc})") from None
        if not isinstance(claims, dict):
            raise TokenError("the token source returned a JWT whose payload is not an object")
        return header, claims, token

    def _claims(self, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and claims of a fresh valid token, re-timed to now, with ``overrides``."""
        header, claims, _ = self._parts()
        now = int(time.time())
        fresh = {"aud": self.audience, "iat": now, "exp": now + 120}
        return header, _merged(_merged(claims, fresh), overrides)

    @property
    def attacker_key(self) -> rsa.RSAPrivateKey:
        """The RSA key generated here (2048 bits) that no verifier trusts."""
        if self._attacker_key is None:
            self._attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._attacker_key

    def attacker_jwks(self, kid: str) -> dict[str, Any]:
        """A JWKS publishing the attacker's public key under ``kid`` (to serve behind jku/x5u)."""
        jwk = json.loads(RSAAlgorithm.to_jwk(self.attacker_key.public_key()))
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                          "n": jwk["n"], "e": jwk["e"]}]}  # fmt: skip

    def _signer(self) -> Signer:
        return _rs256(self._signing_key or self.attacker_key)

    def _resigned(self, **claim_overrides: Any) -> str:
        header, claims = self._claims(**claim_overrides)
        return _compact(header, claims, self._signer())

    # -- signature and algorithm ------------------------------------------------------------
    def alg_none(self) -> str:
        """``alg: none`` with an empty signature: an unsecured JWS proves nothing about its sender;
        only RS256 is allowed."""
        header, claims = self._claims()
        return _compact({**header, "alg": "none"}, claims, lambda _: b"")

    def hs256_with_public_key(self, jwks_json: str | bytes | Mapping[str, Any]) -> str:
        """HS256 with the issuer's *public* key (PEM) as the HMAC secret: anyone can compute it;
        a verifier that lets the token choose the algorithm would accept it."""
        header, claims = self._claims()
        jwks = json.loads(jwks_json) if isinstance(jwks_json, str | bytes) else jwks_json
        keys = [k for k in jwks.get("keys", []) if k.get("kty") == "RSA"]
        match = [k for k in keys if k.get("kid") == header.get("kid")] or keys
        if not match:
            raise TokenError("hs256_with_public_key needs a JWKS with at least one RSA key")
        public = RSAAlgorithm.from_jwk(json.dumps(match[0]))
        assert isinstance(public, rsa.RSAPublicKey)
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _compact(
            {**header, "alg": "HS256"},
            claims,
            lambda data: hmac.new(pem, data, hashlib.sha256).digest(),
        )

    def attacker_signed(self, **claim_overrides: Any) -> str:
        """Good-looking claims signed by a key the issuer never had, under the real ``kid``: the
        signature check against the issuer's key must fail."""
        header, claims = self._claims(**claim_overrides)
        return _compact(header, claims, _rs256(self.attacker_key))

    def tampered(self, **claim_overrides: Any) -> str:
        """The real token with its payload changed (default: another ``sub``) and the original
        signature kept: the signature covers the payload, so it no longer verifies."""
        _, claims, token = self._parts()
        changes = claim_overrides or {"sub": f"{claims.get('sub', '')}-admin"}
        head, _, signature = token.split(".")
        return f"{head}.{b64url(_json(_merged(claims, changes)))}.{signature}"

    def with_header(self, **header_overrides: Any) -> str:
        """Good claims under a changed JOSE header (e.g. ``jku``/``x5u`` pointing at an attacker,
        ``crit``, odd or unknown ``kid``, another ``alg``), re-signed: keys come only from the
        configured JWKS, unknown critical extensions must be refused, ``kid`` is a lookup key,
        not a path or query, and only RS256 is allowed."""
        header, claims = self._claims()
        return _compact(_merged(header, header_overrides), claims, self._signer())

    # -- shape --------------------------------------------------------------------------------
    def truncated(self) -> str:
        """Header and payload without the signature segment: not a JWS at all."""
        head, payload, _ = self.valid().split(".")
        return f"{head}.{payload}"

    def bad_base64(self) -> str:
        """A payload segment with characters outside base64url: it cannot be decoded, and a
        lenient decoder that skips them would verify something other than what was sent."""
        head, payload, signature = self.valid().split(".")
        return f"{head}.{payload[:8]}!*{payload[8:]}.{signature}"

    def bad_json(self) -> str:
        """A JOSE header that is valid base64url but not JSON: a verifier parses the header before
        it has a key, so it must fail cleanly (401), not crash (500)."""
        _, payload, signature = self.valid().split(".")
        return f"{_BROKEN_JSON_HEADER}.{payload}.{signature}"

    def non_object_payload(self) -> str:
        """A payload that is JSON but not an object (a list of the claims): claims cannot be read
        from it, and a verifier assuming a mapping would crash."""
        header, claims = self._claims()
        return _compact(header, [claims], self._signer())

    def oversized(self, n_bytes: int) -> str:
        """A token of at least ``n_bytes`` (padded with a junk claim): verifiers cap the size to
        bound parsing cost; past the cap the answer must be a 4xx, never a 5xx."""
        header, claims = self._claims()
        base = len(_compact(header, claims, self._signer()))
        padding_chars = max(0, (n_bytes - base) * 3 // 4 + 4)
        token = _compact(header, {**claims, "pad": "x" * padding_chars}, self._signer())
        assert len(token) >= n_bytes
        return token

    # -- claims (signed by ``signing_key`` if given, else by the attacker key) ----------------
    def expired(self) -> str:
        """``exp`` five minutes ago (beyond any leeway): the credential is no longer valid."""
        now = int(time.time())
        return self._resigned(iat=now - 600, exp=now - 300)

    def not_yet_valid(self) -> str:
        """``nbf`` two minutes ahead (beyond any leeway): not usable yet."""
        now = int(time.time())
        return self._resigned(iat=now, nbf=now + 120, exp=now + 240)

    def issued_in_future(self) -> str:
        """``iat`` two minutes ahead: a clock that far off, or a pre-minted token, is suspect."""
        now = int(time.time())
        return self._resigned(iat=now + 120, exp=now + 240)

    def too_long_lived(self, lifetime_s: int = 86_400) -> str:
        """``exp - iat`` beyond the lifetime policy (a day by default): control-plane credentials
        must be short-lived."""
        now = int(time.time())
        return self._resigned(iat=now, exp=now + lifetime_s)

    def wrong_issuer(self) -> str:
        """``iss`` of another issuer: only the configured one's tokens count."""
        return self._resigned(iss="https://issuer.attacker.example/v1/identity/oidc")

    def issuer_prefix(self) -> str:
        """``iss`` that merely starts with the configured issuer: a ``startswith`` check would
        accept a path the attacker controls under (or beside) it."""
        header, claims = self._claims()
        claims["iss"] = f"{claims.get('iss', '')}/attacker"
        return _compact(header, claims, self._signer())

    def wrong_audience(self) -> str:
        """``aud`` of another service: a token minted for it must not open this one."""
        return self._resigned(aud=f"{self.audience}-other-service")

    def missing_claim(self, name: str) -> str:
        """Claim ``name`` (``exp``, ``iat``, ``aud``, ``iss``, ``sub``) left out: required claims
        are never assumed (pyjwt accepts a token without ``exp`` unless told otherwise)."""
        return self._resigned(**{name: REMOVE})


def print_token(stack: Stack, audience: str | None = None) -> str:
    """``observastack token [--audience A]``: print a fresh secure-path token and return it.

    Raises ``TokenError`` (with what to do) when no token can be had, e.g. for an audience the
    stack's Vault role does not issue.
    """
    source = stack.token_source()
    try:
        token = source.token(audience)
    finally:
        source.close()
    print(token, flush=True)
    return token
