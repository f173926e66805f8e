"""The Vault stand-in's in-memory state and operations (dev mode: all lost on restart).

Every operation checks the caller's token itself (root for configuration, ACL for the rest) and
raises ``VaultFailure(status, message)`` the way Vault answers: 400 for bad input or a missing
object, 403 ``permission denied``, 404 for an unknown route. Thread-safe (one lock).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

from identity.vault_standin._acl import DEFAULT_POLICY, AclRule, is_allowed, parse_policy
from identity.vault_standin._keys import NamedKey, parse_duration

__all__ = ["DEV_ROOT_TOKEN", "OIDC_PATH", "VaultFailure", "VaultState"]

DEV_ROOT_TOKEN = "root"  # noqa: S105 - Vault dev mode's documented default root token id

OIDC_PATH = "/v1/identity/oidc"
_DEFAULT_TOKEN_TTL_S = 768 * 3600  # Vault's default max lease TTL, 32 days
_ALPHABET = string.ascii_letters + string.digits


class VaultFailure(Exception):
    """An error answered as ``{"errors": [message]}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _denied() -> VaultFailure:
    return VaultFailure(403, "permission denied")


@dataclass
class _User:
    salt: bytes
    password_hash: bytes
    policies: list[str]
    token_ttl_s: int


@dataclass
class _Token:
    policies: list[str]
    entity_id: str
    display_name: str
    path: str
    accessor: str
    created: float
    ttl_s: int
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class _Role:
    key: str
    client_id: str
    ttl_s: int


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 20_000)


def _list_of_str(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise VaultFailure(400, f"{name} must be a list of strings or a comma-separated string")


def _duration(value: object, name: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise VaultFailure(400, f"{name}: {exc}") from None


class VaultState:
    """What a Vault dev server would hold in memory, for the endpoints the project uses."""

    def __init__(
        self,
        *,
        root_token: str = DEV_ROOT_TOKEN,
        api_addr: str = "http://127.0.0.1:8200",
        clock: Callable[[], float] = time.time,
        key_bits: int = 2048,
    ) -> None:
        self.root_token = root_token
        self.api_addr = api_addr.rstrip("/")
        self.cluster_id = str(uuid.uuid4())
        self._clock = clock
        self._key_bits = key_bits
        self._lock = threading.RLock()
        self._issuer = ""
        self._mounts: dict[str, dict[str, Any]] = {"token/": self._mount("token", "token/")}
        self._users: dict[tuple[str, str], _User] = {}
        self._entities: dict[tuple[str, str], str] = {}
        self._tokens: dict[str, _Token] = {}
        self._policies: dict[str, tuple[str, tuple[AclRule, ...]]] = {}
        self._keys: dict[str, NamedKey] = {}
        self._roles: dict[str, _Role] = {}

    # -- tokens and ACL ---------------------------------------------------------------------
    def require_root(self, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, self.root_token):
            raise _denied()

    def require(self, token: str | None, path: str, capabilities: set[str]) -> _Token | None:
        """Root (returns None) or a live token whose policies grant ``capabilities`` on path."""
        if token and hmac.compare_digest(token, self.root_token):
            return None
        with self._lock:
            entry = self._live_token(token)
            rule_sets: list[tuple[AclRule, ...]] = [DEFAULT_POLICY]
            rule_sets += [self._policies[p][1] for p in entry.policies if p in self._policies]
            if not is_allowed(rule_sets, path, capabilities):
                raise _denied()
            return entry

    def _live_token(self, token: str | None) -> _Token:
        entry = self._tokens.get(token or "")
        if entry is None:
            raise _denied()
        if entry.ttl_s and self._clock() >= entry.created + entry.ttl_s:
            del self._tokens[token or ""]
            raise _denied()
        return entry

    def lookup_self(self, token: str | None) -> dict[str, Any]:
        if token and hmac.compare_digest(token, self.root_token):
            return {
                "id": token,
                "policies": ["root"],
                "entity_id": "",
                "ttl": 0,
                "display_name": "root",
                "path": "auth/token/root",
                "expire_time": None,
                "meta": None,
                "type": "service",
                "orphan": True,
                "num_uses": 0,
            }
        entry = self.require(token, "auth/token/lookup-self", {"read"})
        assert entry is not None
        remaining = max(0, int(entry.created + entry.ttl_s - self._clock()))
        return {
            "id": token,
            "accessor": entry.accessor,
            "policies": ["default", *entry.policies],
            "entity_id": entry.entity_id,
            "ttl": remaining,
            "creation_ttl": entry.ttl_s,
            "display_name": entry.display_name,
            "path": entry.path,
            "meta": entry.meta,
            "type": "service",
            "orphan": True,
            "num_uses": 0,
            "renewable": True,
        }

    # -- sys/auth and userpass --------------------------------------------------------------
    @staticmethod
    def _mount(kind: str, path: str) -> dict[str, Any]:
        return {
            "type": kind,
            "description": "",
            "accessor": f"auth_{kind}_{secrets.token_hex(4)}",
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0},
            "local": False,
            "seal_wrap": False,
            "options": None,
            "path": path,
        }

    def list_auth(self, token: str | None) -> dict[str, Any]:
        self.require_root(token)
        with self._lock:
            return {path: dict(mount) for path, mount in self._mounts.items()}

    def enable_auth(self, token: str | None, path: str, body: Mapping[str, Any]) -> None:
        self.require_root(token)
        kind = body.get("type")
        if kind != "userpass":
            raise VaultFailure(400, f"the Vault stand-in supports only userpass, not {kind!r}")
        key = path.strip("/") + "/"
        with self._lock:
            if key in self._mounts:
                raise VaultFailure(400, f"path is already in use at {key}")
            self._mounts[key] = self._mount("userpass", key)

    def _userpass(self, mount: str) -> str:
        key = mount.strip("/") + "/"
        if self._mounts.get(key, {}).get("type") != "userpass":
            raise VaultFailure(404, f'no handler for route "auth/{key}". route entry not found.')
        return key

    def write_user(self, token: str | None, mount: str, name: str, body: Mapping[str, Any]) -> None:
        self.require_root(token)
        with self._lock:
            key = (self._userpass(mount), name.lower())
            user = self._users.get(key)
            password = body.get("password")
            if user is None and not password:
                raise VaultFailure(400, "missing password")
            if password is not None and not isinstance(password, str):
                raise VaultFailure(400, "password must be a string")
            policies_raw = body.get("token_policies", body.get("policies"))
            if user is None:
                salt = secrets.token_bytes(16)
                user = _User(salt, _hash(password or "", salt), [], _DEFAULT_TOKEN_TTL_S)
            elif password:
                user.salt = secrets.token_bytes(16)
                user.password_hash = _hash(password, user.salt)
            if policies_raw is not None:
                user.policies = [p.lower() for p in _list_of_str(policies_raw, "token_policies")]
            if "token_ttl" in body:
                user.token_ttl_s = _duration(body["token_ttl"], "token_ttl") or _DEFAULT_TOKEN_TTL_S
            self._users[key] = user

    def read_user(self, token: str | None, mount: str, name: str) -> dict[str, Any]:
        self.require_root(token)
        with self._lock:
            user = self._users.get((self._userpass(mount), name.lower()))
            if user is None:
                raise VaultFailure(404, "")
            return {
                "token_policies": list(user.policies),
                "policies": list(user.policies),
                "token_ttl": user.token_ttl_s,
            }

    def login(self, mount: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        password = body.get("password")
        with self._lock:
            mount_key = self._userpass(mount)
            user = self._users.get((mount_key, name.lower()))
            ok = (
                user is not None
                and isinstance(password, str)
                and hmac.compare_digest(_hash(password, user.salt), user.password_hash)
            )
            if not ok or user is None:
                raise VaultFailure(400, "invalid username or password")
            alias = (self._mounts[mount_key]["accessor"], name.lower())
            entity_id = self._entities.setdefault(alias, str(uuid.uuid4()))
            client_token = "hvs." + "".join(secrets.choice(_ALPHABET) for _ in range(24))
            entry = _Token(
                policies=list(user.policies),
                entity_id=entity_id,
                display_name=f"{mount_key.rstrip('/')}-{name.lower()}",
                path=f"auth/{mount_key}login/{name}",
                accessor=secrets.token_urlsafe(18),
                created=self._clock(),
                ttl_s=user.token_ttl_s,
                meta={"username": name.lower()},
            )
            self._tokens[client_token] = entry
        return {
            "client_token": client_token,
            "accessor": entry.accessor,
            "policies": ["default", *entry.policies],
            "token_policies": ["default", *entry.policies],
            "identity_policies": None,
            "metadata": entry.meta,
            "lease_duration": entry.ttl_s,
            "renewable": True,
            "entity_id": entity_id,
            "token_type": "service",
            "orphan": True,
            "mfa_requirement": None,
            "num_uses": 0,
        }

    # -- policies ---------------------------------------------------------------------------
    def write_policy(self, token: str | None, name: str, text: object) -> None:
        self.require_root(token)
        name = name.lower()
        if name in ("root", "default"):
            raise VaultFailure(400, f'cannot update "{name}" policy in the Vault stand-in')
        if not isinstance(text, str) or not text.strip():
            raise VaultFailure(400, "'policy' parameter not supplied or empty")
        try:
            rules = parse_policy(text)
        except ValueError as exc:
            raise VaultFailure(400, str(exc)) from None
        with self._lock:
            self._policies[name] = (text, rules)

    def read_policy(self, token: str | None, name: str) -> str:
        self.require_root(token)
        with self._lock:
            found = self._policies.get(name.lower())
        if found is None:
            raise VaultFailure(404, "")
        return found[0]

    # -- identity OIDC ----------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        return (self._issuer or self.api_addr) + OIDC_PATH

    def write_oidc_config(self, token: str | None, body: Mapping[str, Any]) -> None:
        self.require_root(token)
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
        self.require_root(token)
        return {"issuer": self._issuer}

    def write_key(self, token: str | None, name: str, body: Mapping[str, Any]) -> None:
        self.require_root(token)
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
                    rotation_period_s=_duration(rotation or "24h", "rotation_period"),
                    verification_ttl_s=_duration(verification or "24h", "verification_ttl"),
                    allowed_client_ids=_list_of_str(client_ids, "allowed_client_ids"),
                    rotated_at=self._clock(),
                    bits=self._key_bits,
                )
                return
            if rotation is not None:
                key.rotation_period_s = _duration(rotation, "rotation_period")
            if verification is not None:
                key.verification_ttl_s = _duration(verification, "verification_ttl")
            if client_ids is not None:
                key.allowed_client_ids = _list_of_str(client_ids, "allowed_client_ids")

    def _named_key(self, name: str) -> NamedKey:
        key = self._keys.get(name)
        if key is None:
            raise VaultFailure(400, f'no named key found at "{name}"')
        key.tick(self._clock())
        return key

    def read_key(self, token: str | None, name: str) -> dict[str, Any]:
        self.require_root(token)
        with self._lock:
            return self._named_key(name).describe()

    def rotate_key(self, token: str | None, name: str, body: Mapping[str, Any]) -> None:
        self.require_root(token)
        with self._lock:
            key = self._named_key(name)
            ttl = body.get("verification_ttl")
            key.rotate(self._clock(), None if ttl is None else _duration(ttl, "verification_ttl"))

    def write_role(self, token: str | None, name: str, body: Mapping[str, Any]) -> None:
        self.require_root(token)
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
            ttl = _duration(body.get("ttl", role.ttl_s if role else "24h"), "ttl")
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
        self.require_root(token)
        with self._lock:
            role = self._roles.get(name)
            if role is None:
                raise VaultFailure(404, "")
            return {"key": role.key, "client_id": role.client_id, "ttl": role.ttl_s, "template": ""}

    def issue_token(self, token: str | None, role_name: str) -> dict[str, Any]:
        entry = self.require(token, f"identity/oidc/token/{role_name}", {"read"})
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
        self.require(token, "identity/oidc/introspect", {"update", "create"})
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
