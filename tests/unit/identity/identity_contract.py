"""The contract every TokenSource honours (shared by the in-process and subprocess tests)."""

from __future__ import annotations

import time

import httpx
import jwt

from identity import TokenValidator
from pytest_observastack._tokens import RefreshingAuth, TokenSource


def check_token_source_contract(
    source: TokenSource, validator: TokenValidator, audience: str
) -> None:
    """A source gives validator-approved tokens for its audience, again after invalidate()."""
    assert isinstance(source, TokenSource)
    first = source.token()
    decision = validator.validate(first)
    assert decision.ok, decision.reason
    claims = jwt.decode(first, options={"verify_signature": False})
    assert claims["aud"] == audience
    assert claims["exp"] > time.time()
    assert validator.validate(source.token(audience)).ok
    source.invalidate()
    assert validator.validate(source.token()).ok

    def secure_path(request: httpx.Request) -> httpx.Response:
        values = request.headers.get_list("authorization")
        verdict = validator.check_authorization(values or None, path=request.url.path)
        return httpx.Response(200 if verdict.ok else verdict.status, json={"sub": verdict.subject})

    auth = RefreshingAuth(source)
    with httpx.Client(transport=httpx.MockTransport(secure_path), auth=auth) as client:
        for _ in range(3):
            response = client.get("http://secure-path.test/config/limits")
            assert response.status_code == 200, response.text
    assert auth.fetches == 1
