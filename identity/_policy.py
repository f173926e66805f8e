"""The validation policy: every knob of token validation, as data.

A policy is built once at start, either directly or from the environment with
``ValidationPolicy.from_env(os.environ)``, and validated on construction: a bad value raises
``ConfigError`` naming the field (and the environment variable) and what would be accepted.

Environment variables (read only by ``from_env``)::

    OBSERVASTACK_JWT_PROFILE              local (default) | gcp
    OBSERVASTACK_JWT_ISSUER               required, compared exactly with the token's iss
    OBSERVASTACK_JWKS_URL                 required, http(s) URL of the issuer's JWKS
    OBSERVASTACK_JWT_AUDIENCE             required, compared exactly with the token's aud
    OBSERVASTACK_JWT_MAX_LIFETIME_S       exp - iat limit; 300 (local), 3600 (gcp); "none" = off
    OBSERVASTACK_JWT_MAX_AGE_S            now - iat limit; off (local), 300 (gcp); "none" = off
    OBSERVASTACK_JWT_ALLOWED_SUBJECTS     comma list matched against sub or verified email;
                                          mandatory in the gcp profile
    OBSERVASTACK_JWT_LEEWAY_S             clock-skew leeway, 0..60, default 5
    OBSERVASTACK_JWKS_CACHE_S             how long fetched keys are trusted, default 60
    OBSERVASTACK_JWKS_REFETCH_INTERVAL_S  minimum gap between two JWKS fetches, default 2
    OBSERVASTACK_JWT_MAX_TOKEN_BYTES      longer tokens are rejected unparsed, default 8192
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from identity._errors import ConfigError

__all__ = ["PROFILES", "ValidationPolicy"]

PROFILES = ("local", "gcp")

_ENV_PROFILE = "OBSERVASTACK_JWT_PROFILE"
_ENV_ISSUER = "OBSERVASTACK_JWT_ISSUER"
_ENV_JWKS_URL = "OBSERVASTACK_JWKS_URL"
_ENV_AUDIENCE = "OBSERVASTACK_JWT_AUDIENCE"
_ENV_MAX_LIFETIME = "OBSERVASTACK_JWT_MAX_LIFETIME_S"
_ENV_MAX_AGE = "OBSERVASTACK_JWT_MAX_AGE_S"
_ENV_SUBJECTS = "OBSERVASTACK_JWT_ALLOWED_SUBJECTS"
_ENV_LEEWAY = "OBSERVASTACK_JWT_LEEWAY_S"
_ENV_CACHE = "OBSERVASTACK_JWKS_CACHE_S"
_ENV_REFETCH = "OBSERVASTACK_JWKS_REFETCH_INTERVAL_S"
_ENV_MAX_BYTES = "OBSERVASTACK_JWT_MAX_TOKEN_BYTES"

# Per-profile defaults for the two lifetime limits: (max_lifetime_s, max_age_s).
# Google ID tokens always live 3600 s (exp - iat), so on GCP short-lived credentials are
# enforced by the token's age instead: a token is only accepted within max_age_s of its iat.
_PROFILE_DEFAULTS: dict[str, tuple[int | None, int | None]] = {
    "local": (300, None),
    "gcp": (3600, 300),
}
_DAY_S = 86_400


@dataclass(frozen=True)
class ValidationPolicy:
    """What a verifier accepts. Construction validates every field (raises ``ConfigError``)."""

    issuer: str
    jwks_url: str
    audience: str
    max_lifetime_s: int | None = 300
    max_age_s: int | None = None
    allowed_subjects: frozenset[str] = frozenset()
    leeway_s: int = 5
    profile: str = "local"
    jwks_cache_s: float = 60.0
    jwks_refetch_interval_s: float = 2.0
    max_token_bytes: int = 8192

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_subjects", _subjects(self.allowed_subjects))
        problems = list(self._problems())
        if problems:
            raise ConfigError("invalid validation policy: " + "; ".join(problems))

    def _problems(self) -> Iterable[str]:
        if self.profile not in PROFILES:
            yield f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}"
        if not self.issuer or self.issuer != self.issuer.strip():
            yield f"issuer must be a non-empty string, no outer spaces, got {self.issuer!r}"
        url = urlsplit(self.jwks_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            yield f"jwks_url must be an http(s) URL with a host, got {self.jwks_url!r}"
        if not self.audience or self.audience != self.audience.strip():
            yield f"audience must be a non-empty string, got {self.audience!r}"
        for name in ("max_lifetime_s", "max_age_s"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and 1 <= value <= _DAY_S):
                yield f"{name} must be None or an integer in 1..{_DAY_S}, got {value!r}"
        if self.max_lifetime_s is None and self.max_age_s is None:
            yield "one of max_lifetime_s and max_age_s must be set (tokens must be short-lived)"
        if self.profile == "gcp":
            if not self.allowed_subjects:
                yield (
                    "the gcp profile needs allowed_subjects: every Google service-account token "
                    "has the same issuer, so the audience alone does not say who is calling"
                )
            if self.max_age_s is None:
                yield "the gcp profile needs max_age_s (Google ID tokens live one hour)"
        if not (_is_int(self.leeway_s) and 0 <= self.leeway_s <= 60):
            yield f"leeway_s must be an integer in 0..60, got {self.leeway_s!r}"
        if not (_is_number(self.jwks_cache_s) and 1 <= self.jwks_cache_s <= _DAY_S):
            yield f"jwks_cache_s must be a number in 1..{_DAY_S}, got {self.jwks_cache_s!r}"
        if not (_is_number(self.jwks_refetch_interval_s) and self.jwks_refetch_interval_s >= 0):
            yield f"jwks_refetch_interval_s must be >= 0, got {self.jwks_refetch_interval_s!r}"
        elif _is_number(self.jwks_cache_s) and self.jwks_refetch_interval_s >= self.jwks_cache_s:
            yield "jwks_refetch_interval_s must be shorter than jwks_cache_s"
        if not (_is_int(self.max_token_bytes) and 512 <= self.max_token_bytes <= 65_536):
            yield f"max_token_bytes must be an integer in 512..65536, got {self.max_token_bytes!r}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ValidationPolicy:
        """Build the policy from ``OBSERVASTACK_JWT_*`` / ``OBSERVASTACK_JWKS_*`` variables.

        Raises ``ConfigError`` listing every missing or invalid variable at once.
        """
        problems: list[str] = []

        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                problems.append(f"{name} is required")
            return value

        profile = environ.get(_ENV_PROFILE, "local").strip().lower() or "local"
        if profile not in PROFILES:
            problems.append(f"{_ENV_PROFILE} must be one of {', '.join(PROFILES)}, got {profile!r}")
            profile = "local"
        default_lifetime, default_age = _PROFILE_DEFAULTS[profile]
        issuer = required(_ENV_ISSUER)
        jwks_url = required(_ENV_JWKS_URL)
        audience = required(_ENV_AUDIENCE)
        max_lifetime = _optional_int(environ, _ENV_MAX_LIFETIME, default_lifetime, problems)
        max_age = _optional_int(environ, _ENV_MAX_AGE, default_age, problems)
        leeway = _int(environ, _ENV_LEEWAY, 5, problems)
        cache_s = _number(environ, _ENV_CACHE, 60.0, problems)
        refetch_s = _number(environ, _ENV_REFETCH, 2.0, problems)
        max_bytes = _int(environ, _ENV_MAX_BYTES, 8192, problems)
        subjects = frozenset(
            item.strip() for item in environ.get(_ENV_SUBJECTS, "").split(",") if item.strip()
        )
        if problems:
            raise ConfigError("invalid identity configuration: " + "; ".join(problems))
        try:
            return cls(
                issuer=issuer,
                jwks_url=jwks_url,
                audience=audience,
                max_lifetime_s=max_lifetime,
                max_age_s=max_age,
                allowed_subjects=subjects,
                leeway_s=leeway,
                profile=profile,
                jwks_cache_s=cache_s,
                jwks_refetch_interval_s=refetch_s,
                max_token_bytes=max_bytes,
            )
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from the OBSERVASTACK_JWT_* environment)") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _subjects(value: object) -> frozenset[str]:
    if isinstance(value, str):
        raise ConfigError("allowed_subjects must be a set of strings, not one string")
    items = frozenset(value) if isinstance(value, Iterable) else None
    if items is None or not all(isinstance(item, str) and item.strip() for item in items):
        raise ConfigError(f"allowed_subjects must contain non-empty strings, got {value!r}")
    return items


def _optional_int(
    environ: Mapping[str, str], name: str, default: int | None, problems: list[str]
) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in ("none", "off"):
        return None
    try:
        return int(raw)
    except ValueError:
        problems.append(f"{name} must be an integer (or 'none'), got {raw!r}")
        return default


def _int(environ: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        problems.append(f"{name} must be an integer, got {raw!r}")
        return default


def _number(environ: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number of seconds, got {raw!r}")
        return default
    if not math.isfinite(value):
        problems.append(f"{name} must be finite, got {raw!r}")
        return default
    return value
