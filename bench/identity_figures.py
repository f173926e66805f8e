"""In-process figure: the cost of verifying one token with a warm JWKS cache."""

from __future__ import annotations

import json
import time

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bench._figures import Figure, summarize
from identity.validation import JwksCache, TokenValidator, ValidationPolicy

ISSUER = "http://vault:8200/v1/identity/oidc"
AUDIENCE = "observastack-secure-path"


def jwt_verify_warm(n: int = 10_000) -> Figure:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key())) | {"kid": "k1", "alg": "RS256",
                                                               "use": "sig"}  # fmt: skip
    document = json.dumps({"keys": [jwk]}).encode()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=document))
    url = "http://vault:8200/v1/identity/oidc/.well-known/keys"
    policy = ValidationPolicy(issuer=ISSUER, jwks_url=url, audience=AUDIENCE)
    validator = TokenValidator(policy, jwks=JwksCache(url, transport=transport))
    now = int(time.time())
    tokens = [
        jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": f"entity-{i}", "iat": now,
                    "exp": now + 300}, key, algorithm="RS256", headers={"kid": "k1"})
        for i in range(n)
    ]  # fmt: skip
    assert validator.validate(tokens[0]).ok  # warms the cache
    samples = []
    for token in tokens:
        started = time.perf_counter()
        decision = validator.validate(token)
        samples.append(time.perf_counter() - started)
        assert decision.ok
    validator.close()
    s = summarize([x * 1000 for x in samples])
    return Figure("JWT verify, warm cache", f"in-process TokenValidator.validate, {n} tokens",
                  s["p50"], "ms", "≤ 0.1 ms median", s["p50"] <= 0.1, s)  # fmt: skip
