"""Lab 3: the secure-path accepts only short-lived tokens it can verify (answer key)."""

from __future__ import annotations

import httpx
import pytest

from pytest_observastack import Stack, TokenFactory


@pytest.mark.lab("secure-path", points=1)
def test_a_fresh_vault_token_is_accepted(secure_client: httpx.Client) -> None:
    assert secure_client.get("/agent/status").status_code == 200


@pytest.mark.lab("secure-path", points=1)
def test_no_token_no_entry(stack: Stack) -> None:
    response = httpx.get(stack.url("secure") + "/agent/status", trust_env=False)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


@pytest.mark.lab("secure-path", points=2)
@pytest.mark.parametrize("forgery", ["alg_none", "attacker_signed", "expired", "wrong_audience"])
def test_forged_tokens_are_refused(stack: Stack, token: TokenFactory, forgery: str) -> None:
    bad = getattr(token, forgery)()
    response = httpx.get(
        stack.url("secure") + "/agent/status",
        headers={"Authorization": f"Bearer {bad}"},
        trust_env=False,
    )
    assert response.status_code == 401
