"""The stand-in's identity OIDC backend: issuer, named keys, roles, tokens, JWKS, discovery.

Mirrors Vault's ``identity/oidc/*`` endpoints. Configuration needs the root token; a token for a
role needs ``read`` on ``identity/oidc/token/<role>`` and an entity behind the caller's token;
introspection needs ``update`` on ``identity/oidc/introspect``. Access decisions come from the
owning state (``Access``). Thread-safe (one lock).
"""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import jwt

from identity.vault_standin._common import VaultFailure, duration, list_of_str
from identity.vault_standin._keys import NamedKey

__all__ = ["OIDC_PATH", "Access", "Caller", "OidcBackend"]

OIDC_PATH = "/v1/identity/oidc"
_ALPHABET = string.ascii_letters + string.digits


class Caller(Protocol):
    @property
    def entity_id(self) -> str: ...


class Access(Protocol):
    """Who may do what: the owning ``VaultState``."""

    def require_root(self, token: str | None) -> None: ...

    def require(self, token: str | None, path: str, capabilities: set[str]) -> Caller | None: ...


@dataclass
class _Role:
    key: str
    client_id: str
    ttl_s: int


class OidcBackend:
    """Vault's identity tokens backend, in memory."""

    def __init__(
        self, access: Access, *, api_addr: str, clock: Callable[[], float], key_bits: int = 2048
    ) -> None:
        self._access = access
        self.api_addr = api_addr.rstrip("/")
        self._clock = clock
        self._key_bits = key_bits
        self._lock = threading.RLock()
        self._issuer = ""
        self._keys: dict[str, NamedKey] = {}
        self._roles: dict[str, _Role] = {}

    @property
    def issuer(self) -> str:
        return (self._issuer or self.api_addr) + OIDC_PATH

    def write_oidc_config(self, token: str | None, body: Mapping[str, Any]) -> None:
        self._access.require_root(token)
        issuer = body.get("issuer", "")
        parts = urlsplit(issuer) if isinstance(issuer, str) else None
        if issuer and (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise VaultFailure(
                400,
                "invalid issuer, which must include only a scheme, host, "
                "and optional port (e.g. https://example.com:8200)",
            )
        with self._lock:
            self._issuer = str(issuer).rstrip("/")

    def read_oidc_config(self, token: str | None) -> dict[str, Any]:
        self._access.require_root(token)
        return {"issuer": self._issuer}

    def write_key(self, token: str | None, name: str, body: Mapping[str, Any]) -> None:
        self._access.require_root(token)
        if body.get("algorithm", "RS256") not in ("RS256", None):
            raise VaultFailure(400, "the Vault stand-in signs with RS256 only")
        with self._lock:
            key = self._keys.get(name)
            rotation = body.get("rotation_period")
            verification = body.get("verification_ttl")
            client_ids = body.get("allowed_client_ids")
            if key is None:
                self._keys[name] = NamedKey(
                    name=name,
                    rotation_period_s=duration(rotation or "24h", "rotation_period"),
                    verification_ttl_s=duration(verification or "24h", "verification_ttl"),
                    allowed_client_ids=list_of_str(client_ids, "allowed_client_ids"),
                    rotated_at=self._clock(),
                    bits=self._key_bits,
                )
                return
            if rotation is not None:
                key.rotation_period_s = duration(rotation, "rotation_period")
            if verification is not None:
                key.verification_ttl_s = duration(verification, "verification_ttl")
            if client_ids is not None:
                key.allowed_client_ids = list_of_str(client_ids, "allowed_client_ids")

    def _named_key(self, name: str) -> NamedKey:
        key = self._keys.get(name)
        if key is None:
            raise VaultFailure(400, f'no named key found at "{name}"')
        key.tick(self._clock())
        return key

    def read_key(self, token: str | None, name: str) -> dict[str, Any]:
        self._access.require_root(token)
        with self._lock:
            return self._named_key(name).describe()

    def rotate_key(self, token: str | None, name: str, body: Mapping[str, Any]) -> None:
        self._access.require_root(token)
        with self._lock:
            key = self._named_key(name)
            ttl = body.get("verification_ttl")
            key.rotate(self._clock(), None if ttl is None else duration(ttl, "verification_ttl"))

    def write_role(self, token: str | None, name: str, body: Mapping[str, Any]) -> None:
        self._access.require_root(token)
        if body.get("template"):
            raise VaultFailure(400, "the Vault stand-in does not support role templates")
        with self._lock:
            role = self._roles.get(name)
            key_name = body.get("key", role.key if role else None)
            if not isinstance(key_name, str) or not key_name:
                raise VaultFailure(400, "the key parameter is required")
            key = self._keys.get(key_name)
            if key is None:
                raise VaultFailure(400, f'key "{key_name}" does not exist')
            ttl = duration(body.get("ttl", role.ttl_s if role else "24h"), "ttl")
            if ttl > key.verification_ttl_s:
                raise VaultFailure(
                    400,
                    "a role's token ttl cannot be longer than the "
                    "verification_ttl of the key it references",
                )
            client_id = body.get("client_id") or (role.client_id if role else None)
            if client_id is None:
                client_id = "".join(secrets.choice(_ALPHABET) for _ in range(26))
            if not isinstance(client_id, str):
                raise VaultFailure(400, "client_id must be a string")
            self._roles[name] = _Role(key=key_name, client_id=client_id, ttl_s=ttl)

    def read_role(self, token: str | None, name: str) -> dict[str, Any]:
        self._access.require_root(token)
        with self._lock:
            role = self._roles.get(name)
            if role is None:
                raise VaultFailure(404, "")
            return {"key": role.key, "client_id": role.client_id, "ttl": role.ttl_s, "template": ""}

    def issue_token(self, token: str | None, role_name: str) -> dict[str, Any]:
        entry = self._access.require(token, f"identity/oidc/token/{role_name}", {"read"})
        if entry is None or not entry.entity_id:
            raise VaultFailure(400, "no entity associated with the request's token")
        with self._lock:
            role = self._roles.get(role_name)
            if role is None:
                raise VaultFailure(400, f'role "{role_name}" not found')
            key = self._named_key(role.key)
            if not key.allows(role.client_id):
                raise VaultFailure(
                    400,
                    f'the key "{role.key}" does not list the client ID of '
                    f'the role "{role_name}" as an allowed client ID',
                )
            now = int(self._clock())
            claims = {
                "aud": role.client_id,
                "exp": now + role.ttl_s,
                "iat": now,
                "iss": self.issuer,
                "namespace": "root",
                "sub": entry.entity_id,
            }
            signed = key.current.sign(claims)
        return {"client_id": role.client_id, "token": signed, "ttl": role.ttl_s}

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            published = []
            for key in self._keys.values():
                key.tick(now)
                published += [dict(signing.public_jwk) for signing in key.published()]
        return {"keys": published}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.issuer + "/.well-known/keys",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def introspect(self, token: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        self._access.require(token, "identity/oidc/introspect", {"update", "create"})
        candidate = body.get("token")
        if not isinstance(candidate, str) or not candidate:
            raise VaultFailure(400, "missing token")
        client_id = body.get("client_id") or None
        try:
            kid = jwt.get_unverified_header(candidate).get("kid")
            with self._lock:
                signing = next(
                    (s for k in self._keys.values() for s in k.published() if s.kid == kid), None
                )
            if signing is None:
                return {"active": False, "error": "unable to find a key to verify the token"}
            jwt.decode(
                candidate,
                signing.public_key(),
                algorithms=["RS256"],
                issuer=self.issuer,
                audience=client_id,
                options={"require": ["exp", "iat"], "verify_aud": client_id is not None},
            )
        except jwt.PyJWTError as exc:
            return {"active": False, "error": str(exc)}
        return {"active": True}
