"""The Vault stand-in speaks enough of Vault's API for hvac and the bootstrap, least-privilege."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
import jwt
import pytest
from identity_testkit import AUDIENCE, FakeClock, wait_until

from identity import TokenValidator, ValidationPolicy
from identity.bootstrap import DEFAULT_KEY, bootstrap_vault, oidc_issuer, rotate_key
from identity.vault_standin import VaultStandinServer, VaultState, handle
from identity.vault_standin._acl import AclRule, is_allowed, parse_policy
from identity.vault_standin._keys import parse_duration

REPO = Path(__file__).resolve().parents[3]
ISSUER_BASE = "http://vault:8200"
USER, PASSWORD = "control-panel", "s3cret-pw"


def bootstrap(server: VaultStandinServer, **kw: Any) -> None:
    bootstrap_vault(
        server.url, "root", audience=AUDIENCE, issuer=ISSUER_BASE, username=USER,
        password=PASSWORD, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def vault() -> Iterator[VaultStandinServer]:
    with VaultStandinServer() as server:
        bootstrap(server)
        yield server


@pytest.fixture
def fresh_vault() -> Iterator[VaultStandinServer]:
    with VaultStandinServer() as server:
        yield server


@pytest.fixture
def client(vault: VaultStandinServer) -> Iterator[hvac.Client]:
    c = hvac.Client(url=vault.url, token="")
    yield c
    c.adapter.close()


@pytest.fixture
def root(vault: VaultStandinServer) -> Iterator[hvac.Client]:
    c = hvac.Client(url=vault.url, token="root")
    yield c
    c.adapter.close()


def validator_for(server: VaultStandinServer, **kw: Any) -> TokenValidator:
    policy = ValidationPolicy(
        issuer=oidc_issuer(ISSUER_BASE),
        jwks_url=server.url + "/v1/identity/oidc/.well-known/keys",
        audience=AUDIENCE,
        **kw,
    )
    return TokenValidator(policy)


# -- the HTTP API surface, without sockets --------------------------------------------------
def call(state: VaultState, method: str, path: str, body: object = None, token: str = "") -> Any:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = {"X-Vault-Token": token} if token else {}
    reply = handle(state, method, path, headers, raw)
    return reply.status, json.loads(reply.body) if reply.body else None


def test_health_names_the_standin() -> None:
    status, body = call(VaultState(), "GET", "/v1/sys/health")
    assert status == 200
    assert (body["initialized"], body["sealed"], body["standby"]) == (True, False, False)
    assert "standin" in body["version"]
    assert "not HashiCorp Vault" in body["observastack_standin"]


@pytest.mark.parametrize(
    ("method", "path", "body", "token", "status", "errors"),
    [
        ("GET", "/v1/secret/data/x", None, "root", 404, ['no handler for route "secret/data/x".']),
        ("DELETE", "/v1/identity/oidc/config", None, "root", 405, ["unsupported operation"]),
        ("GET", "/v1/sys/auth", None, "", 403, ["permission denied"]),
        ("GET", "/v1/sys/auth", None, "not-a-token", 403, ["permission denied"]),
        ("POST", "/v1/sys/auth/approle", {"type": "approle"}, "root", 400, ["supports only"]),
        ("POST", "/v1/identity/oidc/role/r", {"key": "nope"}, "root", 400, ['"nope" does not']),
        ("GET", "/v1/identity/oidc/token/r", None, "root", 400, ["no entity associated"]),
    ],
    ids=["unknown-route", "bad-method", "no-token", "bad-token", "unsupported-auth",
         "role-without-key", "root-has-no-entity"],
)  # fmt: skip
def test_errors_have_vault_shapes(
    method: str, path: str, body: object, token: str, status: int, errors: list[str]
) -> None:
    got_status, got = call(VaultState(), method, path, body, token)
    assert got_status == status
    assert set(got) == {"errors"}
    assert len(got["errors"]) == len(errors)
    for fragment, message in zip(errors, got["errors"], strict=True):
        assert fragment in message


def test_bad_json_is_400() -> None:
    reply = handle(VaultState(), "POST", "/v1/identity/oidc/config", {"X-Vault-Token": "root"},
                   b"{oops")  # fmt: skip
    assert reply.status == 400
    assert "failed to parse JSON input" in json.loads(reply.body)["errors"][0]


# -- hvac end to end ------------------------------------------------------------------------
def test_hvac_login_token_and_validation(vault: VaultStandinServer, client: hvac.Client) -> None:
    login = client.auth.userpass.login(USER, PASSWORD)
    auth = login["auth"]
    assert auth["client_token"].startswith("hvs.")
    assert auth["entity_id"]
    assert auth["policies"] == ["default", "observastack-control-panel"]
    assert auth["lease_duration"] > 0
    response = client.secrets.identity.generate_signed_id_token("secure-path")
    assert set(response["data"]) == {"token", "client_id", "ttl"}
    assert response["data"]["client_id"] == AUDIENCE
    assert response["data"]["ttl"] == 300
    token = response["data"]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "http://vault:8200/v1/identity/oidc"
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == auth["entity_id"]
    assert claims["exp"] - claims["iat"] == 300
    validator = validator_for(vault)
    try:
        decision = validator.check_authorization(f"Bearer {token}", path="/config/x")
        assert decision.ok, decision.reason
        assert decision.subject == auth["entity_id"]
    finally:
        validator.close()


def test_same_entity_on_every_login(client: hvac.Client) -> None:
    first = client.auth.userpass.login(USER, PASSWORD)["auth"]["entity_id"]
    second = client.auth.userpass.login(USER, PASSWORD)["auth"]["entity_id"]
    assert first == second


def test_wrong_password(client: hvac.Client) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid username or password"):
        client.auth.userpass.login(USER, "wrong")


def test_login_token_is_least_privilege(client: hvac.Client) -> None:
    client.auth.userpass.login(USER, PASSWORD)
    assert client.is_authenticated()  # lookup-self, from the default policy
    forbidden = [
        client.sys.list_auth_methods,
        lambda: client.sys.create_or_update_acl_policy("mine", 'path "*" {capabilities=["sudo"]}'),
        lambda: client.secrets.identity.generate_signed_id_token("other-role"),
        client.secrets.identity.read_tokens_backend_configuration,
        lambda: client.secrets.identity.create_named_key("k2", allowed_client_ids=["*"]),
        lambda: client.auth.userpass.create_or_update_user("evil", password="x"),
    ]
    for attempt in forbidden:
        with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
            attempt()


def test_bootstrap_is_idempotent(vault: VaultStandinServer, root: hvac.Client) -> None:
    kids = {key["kid"] for key in root.secrets.identity.read_active_public_keys()["keys"]}
    bootstrap(vault)
    bootstrap(vault)
    again = {key["kid"] for key in root.secrets.identity.read_active_public_keys()["keys"]}
    assert again == kids  # no new keys: upserts only
    role = root.secrets.identity.read_role("secure-path")["data"]
    assert (role["client_id"], role["ttl"], role["key"]) == (AUDIENCE, 300, DEFAULT_KEY)


def test_public_endpoints_need_no_token(client: hvac.Client) -> None:
    discovery = client.secrets.identity.read_well_known_configurations()
    assert discovery["issuer"] == "http://vault:8200/v1/identity/oidc"
    assert discovery["jwks_uri"].endswith("/v1/identity/oidc/.well-known/keys")
    keys = client.secrets.identity.read_active_public_keys()["keys"]
    assert keys
    assert all(set(k) == {"use", "kty", "kid", "alg", "n", "e"} for k in keys)


def test_introspection(client: hvac.Client, root: hvac.Client) -> None:
    client.auth.userpass.login(USER, PASSWORD)
    token = client.secrets.identity.generate_signed_id_token("secure-path")["data"]["token"]
    assert root.secrets.identity.introspect_signed_id_token(token, AUDIENCE) == {"active": True}
    other = root.secrets.identity.introspect_signed_id_token(token, "someone-else")
    assert other["active"] is False


def test_key_without_the_audience_cannot_sign(fresh_vault: VaultStandinServer) -> None:
    root = hvac.Client(url=fresh_vault.url, token="root")
    try:
        root.secrets.identity.create_named_key("plain")  # hvac sends allowed_client_ids: null
        root.secrets.identity.create_or_update_role("r", key="plain", client_id=AUDIENCE, ttl="5m")
        root.sys.enable_auth_method("userpass")
        root.sys.create_or_update_acl_policy("p", 'path "identity/oidc/token/r" {\n'
                                                  '  capabilities = ["read"]\n}')  # fmt: skip
        root.auth.userpass.create_or_update_user("u", password="pw", token_policies=["p"])
        user = hvac.Client(url=fresh_vault.url, token="")
        user.auth.userpass.login("u", "pw")
        with pytest.raises(hvac.exceptions.InvalidRequest, match="allowed client ID"):
            user.secrets.identity.generate_signed_id_token("r")
        user.adapter.close()
        with pytest.raises(hvac.exceptions.InvalidRequest, match="verification_ttl"):
            root.secrets.identity.create_or_update_role("r2", key="plain", ttl="48h")
    finally:
        root.adapter.close()


def test_rotation(fresh_vault: VaultStandinServer) -> None:
    bootstrap(fresh_vault)
    client = hvac.Client(url=fresh_vault.url, token="")
    validator = validator_for(fresh_vault, jwks_refetch_interval_s=0)
    try:
        client.auth.userpass.login(USER, PASSWORD)
        before = client.secrets.identity.generate_signed_id_token("secure-path")["data"]["token"]
        assert validator.validate(before).ok
        rotate_key(fresh_vault.url, "root")
        after = client.secrets.identity.generate_signed_id_token("secure-path")["data"]["token"]
        assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
        assert validator.validate(after).ok  # the next key was already published
        assert validator.validate(before).ok  # rotated-out keys stay for verification_ttl
    finally:
        validator.close()
        client.adapter.close()


def test_hvac_rotate_named_key_does_not_rotate(fresh_vault: VaultStandinServer) -> None:
    """LIBRARY-FACTS §6: hvac posts to the key itself; only rotate_key really rotates."""
    bootstrap(fresh_vault)
    root = hvac.Client(url=fresh_vault.url, token="root")
    try:
        kids = {k["kid"] for k in root.secrets.identity.read_active_public_keys()["keys"]}
        root.secrets.identity.rotate_named_key(DEFAULT_KEY, verification_ttl="2h")
        assert {k["kid"] for k in root.secrets.identity.read_active_public_keys()["keys"]} == kids
        rotate_key(fresh_vault.url, "root")
        assert len(root.secrets.identity.read_active_public_keys()["keys"]) == 3
    finally:
        root.adapter.close()


def test_automatic_rotation_and_retirement() -> None:
    clock = FakeClock()
    state = VaultState(clock=clock)
    call(state, "POST", "/v1/identity/oidc/key/k", {"rotation_period": "1h",
         "verification_ttl": "10m", "allowed_client_ids": ["*"]}, "root")  # fmt: skip
    first = {k["kid"] for k in state.oidc.jwks()["keys"]}
    assert len(first) == 2  # current and next
    clock.advance(3600)
    second = {k["kid"] for k in state.oidc.jwks()["keys"]}
    assert len(second) == 3
    assert first < second
    clock.advance(601)
    assert len(state.oidc.jwks()["keys"]) == 2  # the retired key is gone


def test_login_tokens_expire() -> None:
    clock = FakeClock()
    state = VaultState(clock=clock)
    call(state, "POST", "/v1/sys/auth/userpass", {"type": "userpass"}, "root")
    call(state, "POST", "/v1/auth/userpass/users/u", {"password": "p", "token_ttl": "1m"}, "root")
    _, login = call(state, "POST", "/v1/auth/userpass/login/u", {"password": "p"})
    token = login["auth"]["client_token"]
    assert call(state, "GET", "/v1/auth/token/lookup-self", token=token)[0] == 200
    clock.advance(61)
    assert call(state, "GET", "/v1/auth/token/lookup-self", token=token)[0] == 403


# -- policies and durations -----------------------------------------------------------------
def test_policy_parser_accepts_hcl_and_json() -> None:
    hcl = """
    # the control panel
    path "identity/oidc/token/secure-path" {
      capabilities = ["read"]   // only this
    }
    path "secret/+/x*" { capabilities = ["read", "list"] }
    """
    rules = parse_policy(hcl)
    assert rules[0] == AclRule("identity/oidc/token/secure-path", frozenset({"read"}))
    as_json = parse_policy('{"path": {"a/b": {"capabilities": ["deny"]}}}')
    assert as_json == (AclRule("a/b", frozenset({"deny"})),)
    assert is_allowed([rules], "identity/oidc/token/secure-path", {"read"})
    assert not is_allowed([rules], "identity/oidc/token/other", {"read"})
    assert is_allowed([rules], "secret/any/xyz", {"list"})
    assert not is_allowed([rules, as_json], "a/b", {"read"})


@pytest.mark.parametrize(
    "text",
    [
        'path "a" { capabilities = ["read"] allowed_parameters = {} }',
        'path "a" { capabilities = ["fly"] }',
        'path "a" { capabilities = [read] }',
        "not a policy",
        '{"path": {"a": {"capabilities": ["read"], "denied_parameters": {}}}}',
    ],
)
def test_policy_parser_refuses_what_it_does_not_enforce(text: str) -> None:
    with pytest.raises(ValueError, match="failed to parse policy"):
        parse_policy(text)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(300, 300), ("300", 300), ("300s", 300), ("5m", 300), ("1h30m", 5400), ("24h", 86400)],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "5 minutes", "-5m", True, None, "5x"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


# -- python -m identity.vault_standin -------------------------------------------------------
def test_module_runs_and_says_it_is_a_standin(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "VAULT_STANDIN_HOST": "127.0.0.1",
           "VAULT_STANDIN_PORT": str(port), "VAULT_DEV_ROOT_TOKEN_ID": "dev-root"}  # fmt: skip
    log_path = tmp_path / "standin.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "identity.vault_standin"], env=env, stdout=log, stderr=log
        )
        try:

            def healthy() -> bool:
                assert process.poll() is None, log_path.read_text()
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/v1/sys/health").status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(healthy, timeout=20, what="the stand-in's health endpoint")
            listing = httpx.get(
                f"http://127.0.0.1:{port}/v1/sys/auth", headers={"X-Vault-Token": "dev-root"}
            )
            assert listing.status_code == 200
            assert "token/" in listing.json()["data"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    output = log_path.read_text()
    assert "STAND-IN" in output
    assert "dev-root" not in output
