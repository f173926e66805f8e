"""A stand-in for HashiCorp Vault's dev mode, for machines where Vault cannot be had.

This is NOT Vault. It speaks Vault's real HTTP API for exactly the endpoints ObservaStack uses,
so that hvac and the bootstrap work against it unchanged; wherever the official Vault image can
be pulled, use that instead (the compose ``vault`` service does by default).

Data in: Vault API requests (``X-Vault-Token``), JSON bodies. Data out: Vault-shaped JSON
envelopes and errors, RS256 identity tokens, and the JWKS / discovery documents. State lives in
memory only: like ``vault server -dev``, a restart forgets every key, role, policy, user and token.

Implemented: ``sys/health``; ``sys/auth`` (list, enable userpass); ``auth/userpass/users/<n>`` and
``auth/userpass/login/<n>`` (an entity is created on first login); ``auth/token/lookup-self``;
``sys/policies/acl/<n>`` and ``sys/policy/<n>`` (``path`` blocks with ``capabilities`` only);
``identity/oidc/config``, ``key/<n>`` (+ ``/rotate``, automatic rotation, next key pre-published),
``role/<n>``, ``token/<role>``, ``introspect``, ``.well-known/keys`` and
``.well-known/openid-configuration``. Not implemented: everything else (secrets engines, leases,
token creation, templates, namespaces, other auth methods, other signing algorithms).

Run it with ``python -m identity.vault_standin``; in tests use ``VaultStandinServer().start()``.
"""

from __future__ import annotations

from identity.vault_standin._api import STANDIN_VERSION, Reply, handle
from identity.vault_standin._common import VaultFailure
from identity.vault_standin._server import StandinSettings, VaultStandinServer, main
from identity.vault_standin._state import VaultState

__all__ = [
    "STANDIN_VERSION",
    "Reply",
    "StandinSettings",
    "VaultFailure",
    "VaultStandinServer",
    "VaultState",
    "handle",
    "main",
]
