"""Configure Vault (real dev mode, or the stand-in, unchanged) to issue secure-path tokens.

``bootstrap_vault`` is idempotent: every step is an upsert or checks first, so it is safe to run
on every start and again after Vault restarted (dev mode forgets everything). It uses hvac, with
the root token, and creates:

1. the identity tokens issuer (``identity/oidc/config``): tokens carry
   ``iss = <issuer>/v1/identity/oidc``;
2. a named RS256 signing key whose ``allowed_client_ids`` lists the audience (hvac sends ``null``
   otherwise, and Vault then lets no role use the key);
3. a role whose ``client_id`` is the secure-path audience and whose TTL is at most 5 minutes
   (Vault's default is 24 h);
4. the ``userpass`` auth method (it gives the caller an entity, which becomes ``sub``);
5. a least-privilege policy: ``read`` on ``identity/oidc/token/<role>`` and nothing else;
6. the control-panel user, holding only that policy.

``rotate_key`` rotates the signing key through ``/identity/oidc/key/<name>/rotate``; hvac's
``rotate_named_key`` posts to the key itself and so only changes its verification TTL.
"""

from __future__ import annotations

from collections.abc import Callable

import hvac
import hvac.exceptions
import requests

from identity._errors import BootstrapError

__all__ = [
    "DEFAULT_KEY",
    "DEFAULT_POLICY",
    "DEFAULT_ROLE",
    "bootstrap_vault",
    "oidc_issuer",
    "policy_text",
    "rotate_key",
]

DEFAULT_ROLE = "secure-path"
DEFAULT_KEY = "observastack"
DEFAULT_POLICY = "observastack-control-panel"
MAX_TTL_S = 300


def oidc_issuer(issuer: str) -> str:
    """The ``iss`` of Vault identity tokens for a configured issuer base URL."""
    return issuer.rstrip("/") + "/v1/identity/oidc"


def policy_text(role: str) -> str:
    """The least-privilege policy: read tokens of one role, nothing else."""
    return f'path "identity/oidc/token/{role}" {{\n  capabilities = ["read"]\n}}\n'


def _client(addr: str, root_token: str, timeout_s: float) -> hvac.Client:
    # An explicit token: hvac would otherwise fall back to VAULT_TOKEN / ~/.vault-token.
    return hvac.Client(url=addr, token=root_token, timeout=timeout_s)


def bootstrap_vault(
    addr: str,
    root_token: str,
    *,
    audience: str,
    issuer: str,
    ttl_s: int = MAX_TTL_S,
    username: str,
    password: str,
    role: str = DEFAULT_ROLE,
    key: str = DEFAULT_KEY,
    policy: str = DEFAULT_POLICY,
    timeout_s: float = 5.0,
) -> None:
    """Make Vault at ``addr`` issue ``aud=audience`` tokens to ``username``; idempotent.

    Raises ``BootstrapError`` naming the failed step, the address and what to check.
    """
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise BootstrapError(f"ttl_s must be in 1..{MAX_TTL_S} (short-lived tokens), got {ttl_s}")
    if not audience or not username or not password:
        raise BootstrapError("audience, username and password must be non-empty")
    client = _client(addr, root_token, timeout_s)
    identity = client.secrets.identity
    # Keep rotated-out keys published long enough for every token signed before the rotation.
    verification_ttl = f"{max(3600, 2 * ttl_s)}s"
    steps = [
        ("configure the identity tokens issuer",
         lambda: identity.configure_tokens_backend(issuer=issuer.rstrip("/"))),
        ("create the signing key",
         lambda: identity.create_named_key(
             name=key, rotation_period="24h", verification_ttl=verification_ttl,
             allowed_client_ids=[audience], algorithm="RS256")),
        ("create the token role",
         lambda: identity.create_or_update_role(
             name=role, key=key, client_id=audience, ttl=f"{ttl_s}s")),
        ("enable the userpass auth method", lambda: _enable_userpass(client)),
        ("write the control-panel policy",
         lambda: client.sys.create_or_update_acl_policy(name=policy, policy=policy_text(role))),
        ("create the control-panel user",
         lambda: client.auth.userpass.create_or_update_user(
             username=username, password=password, token_policies=[policy])),
    ]  # fmt: skip
    try:
        for what, step in steps:
            _run(addr, what, step)
    finally:
        client.adapter.close()


def _enable_userpass(client: hvac.Client) -> None:
    mounts = client.sys.list_auth_methods()
    listing = mounts.get("data") or mounts
    if "userpass/" not in listing:
        try:
            client.sys.enable_auth_method(method_type="userpass")
        except hvac.exceptions.InvalidRequest as exc:
            # A concurrent bootstrap enabled it between our look and our write: that is success.
            if "already in use" not in str(exc):
                raise


def rotate_key(
    addr: str,
    root_token: str,
    *,
    key: str = DEFAULT_KEY,
    verification_ttl: str | None = None,
    timeout_s: float = 5.0,
) -> None:
    """Rotate the named signing key now (new tokens are signed by the next key)."""
    client = _client(addr, root_token, timeout_s)
    body = {} if verification_ttl is None else {"verification_ttl": verification_ttl}
    try:
        _run(
            addr,
            f"rotate the signing key {key!r}",
            lambda: client.adapter.post(f"/v1/identity/oidc/key/{key}/rotate", json=body),
        )
    finally:
        client.adapter.close()


def _run(addr: str, what: str, step: Callable[[], object]) -> None:
    try:
        step()
    except hvac.exceptions.VaultError as exc:
        raise BootstrapError(
            f"Vault bootstrap at {addr} failed to {what}: {type(exc).__name__}: {exc}. "
            "Check the root token (VAULT_DEV_ROOT_TOKEN_ID) and that Vault is unsealed."
        ) from exc
    except requests.RequestException as exc:
        raise BootstrapError(
            f"Vault bootstrap could not reach {addr} to {what}: {type(exc).__name__}: {exc}. "
            "Is the vault service up and published on that address?"
        ) from exc
