"""Named signing keys of the stand-in's identity OIDC backend, and Vault duration strings.

Like Vault, every named key holds a *current* key that signs, a *next* key that is already
published in the JWKS (so verifiers can learn it before it signs anything), and the keys rotated
out, which stay published for ``verification_ttl`` so that tokens signed just before a rotation
still verify. A key also rotates by itself once ``rotation_period`` has passed.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["NamedKey", "SigningKey", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> int:
    """Seconds from a Vault duration: an integer, "300", "5m", "1h30m", "24h"; ValueError else."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = float(value.strip())
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        parts = list(_DURATION_PART.finditer(text))
        if not parts or "".join(part.group(0) for part in parts) != text:
            raise ValueError(f"invalid duration {value!r} (use e.g. 300, 300s, 5m, 24h)")
        seconds = sum(float(part.group(1)) * _UNIT_S[part.group(2)] for part in parts)
    else:
        raise ValueError(f"invalid duration {value!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return int(seconds)


class SigningKey:
    """One RSA key pair with its key id; signs RS256 JWTs with ``kid`` in the header."""

    def __init__(self, bits: int = 2048) -> None:
        self.kid = str(uuid.uuid4())
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self._private.public_key()))
        # Vault publishes exactly these members.
        self.public_jwk = {"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                           "n": jwk["n"], "e": jwk["e"]}  # fmt: skip

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": self.kid})

    def public_key(self) -> rsa.RSAPublicKey:
        return self._private.public_key()


@dataclass
class NamedKey:
    """A Vault identity OIDC named key (``identity/oidc/key/<name>``)."""

    name: str
    rotation_period_s: int
    verification_ttl_s: int
    allowed_client_ids: list[str]
    rotated_at: float
    bits: int = 2048
    current: SigningKey = field(init=False)
    next: SigningKey = field(init=False)
    retired: list[tuple[SigningKey, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.current = SigningKey(self.bits)
        self.next = SigningKey(self.bits)

    def rotate(self, now: float, verification_ttl_s: int | None = None) -> None:
        ttl = self.verification_ttl_s if verification_ttl_s is None else verification_ttl_s
        self.retired.append((self.current, now + ttl))
        self.current = self.next
        self.next = SigningKey(self.bits)
        self.rotated_at = now

    def tick(self, now: float) -> None:
        """Apply the automatic rotation and drop retired keys past their verification TTL."""
        if self.rotation_period_s > 0 and now - self.rotated_at >= self.rotation_period_s:
            self.rotate(now)
        self.retired = [(key, until) for key, until in self.retired if until > now]

    def published(self) -> list[SigningKey]:
        return [self.current, self.next, *(key for key, _ in self.retired)]

    def allows(self, client_id: str) -> bool:
        return "*" in self.allowed_client_ids or client_id in self.allowed_client_ids

    def describe(self) -> dict[str, Any]:
        return {
            "algorithm": "RS256",
            "allowed_client_ids": list(self.allowed_client_ids),
            "rotation_period": self.rotation_period_s,
            "verification_ttl": self.verification_ttl_s,
        }
