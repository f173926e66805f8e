"""The Vault stand-in's in-memory state: tokens, ACL policies, userpass (dev mode: no disk).

Every operation checks the caller's token itself (root for configuration, ACL for the rest) and
raises ``VaultFailure(status, message)`` the way Vault answers: 400 for bad input or a missing
object, 403 ``permission denied``, 404 for an unknown route. Thread-safe (one lock). The identity
OIDC backend (keys, roles, tokens) is ``self.oidc`` (``_oidc``), which asks this object for access
decisions.
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

from identity.vault_standin._acl import DEFAULT_POLICY, AclRule, is_allowed, parse_policy
from identity.vault_standin._common import VaultFailure, denied, duration, list_of_str
from identity.vault_standin._oidc import OidcBackend

__all__ = ["DEV_ROOT_TOKEN", "VaultFailure", "VaultState"]

DEV_ROOT_TOKEN = "root"  # noqa: S105 - Vault dev mode's documented default root token id

_DEFAULT_TOKEN_TTL_S = 768 * 3600  # Vault's default max lease TTL, 32 days
_ALPHABET = string.ascii_letters + string.digits


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


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 20_000)


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
        self._lock = threading.RLock()
        self._mounts: dict[str, dict[str, Any]] = {"token/": self._mount("token", "token/")}
        self._users: dict[tuple[str, str], _User] = {}
        self._entities: dict[tuple[str, str], str] = {}
        self._tokens: dict[str, _Token] = {}
        self._policies: dict[str, tuple[str, tuple[AclRule, ...]]] = {}
        self.oidc = OidcBackend(self, api_addr=self.api_addr, clock=clock, key_bits=key_bits)

    # -- tokens and ACL ---------------------------------------------------------------------
    def require_root(self, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, self.root_token):
            raise denied()

    def require(self, token: str | None, path: str, capabilities: set[str]) -> _Token | None:
        """Root (returns None) or a live token whose policies grant ``capabilities`` on path."""
        if token and hmac.compare_digest(token, self.root_token):
            return None
        with self._lock:
            entry = self._live_token(token)
            rule_sets: list[tuple[AclRule, ...]] = [DEFAULT_POLICY]
            rule_sets += [self._policies[p][1] for p in entry.policies if p in self._policies]
            if not is_allowed(rule_sets, path, capabilities):
                raise denied()
            return entry

    def _live_token(self, token: str | None) -> _Token:
        entry = self._tokens.get(token or "")
        if entry is None:
            raise denied()
        if entry.ttl_s and self._clock() >= entry.created + entry.ttl_s:
            del self._tokens[token or ""]
            raise denied()
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
                user.policies = [p.lower() for p in list_of_str(policies_raw, "token_policies")]
            if "token_ttl" in body:
                user.token_ttl_s = duration(body["token_ttl"], "token_ttl") or _DEFAULT_TOKEN_TTL_S
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
