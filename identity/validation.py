"""The one token-validation path used by every verifier (secure-gateway authz, Control Agent).

Data in: an ``Authorization`` header value (or a bare token) and the request path. Data out: a
``Decision`` (ok, HTTP status, subject, short reason, verified claims) and one structured JSON log
line per decision on the ``observastack.identity`` logger. Keys come only from the configured
JWKS URL through ``JwksCache``; the policy comes only from ``ValidationPolicy``.

The checks, in order (the first failure decides; reasons are short and never echo the token):

1. header: exactly one ``Authorization`` value, scheme ``Bearer``, exactly one token, size limit;
2. shape: three base64url segments; the JOSE header is a JSON object;
3. JOSE header: ``alg`` must be RS256 (allow-list of one); any ``crit`` or ``b64`` is rejected (we
   implement no extension); ``kid`` must be a short printable string; ``jku``, ``x5u``, ``jwk`` and
   ``x5c`` are ignored: never read, never fetched;
4. key: looked up by ``kid`` in the JWKS cache (one rate-limited refetch on an unknown kid; no
   usable key set -> fail closed with 401);
5. signature (pyjwt, RS256 only, minimum key length enforced); the payload is a JSON object;
6. claims: ``iss`` exact; ``aud`` a single string equal to the audience (a list is rejected);
   ``exp``, ``iat``, ``sub`` required; ``exp`` / ``nbf`` / ``iat`` against the clock with the
   policy's small leeway; ``exp - iat`` <= max_lifetime_s; ``now - iat`` <= max_age_s;
7. subject allow-list (``sub`` or a verified ``email``) -> 403 when the token is valid but the
   caller is not allowed.

Status codes: 401 (with ``WWW-Authenticate: Bearer error="invalid_token"``) for every problem with
the credential, wrong audience included; 403 (``error="insufficient_scope"``) only for a valid
token whose subject is not on the allow-list.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt

from identity._errors import ConfigError, JwksUnavailableError
from identity._jwks import JwksCache
from identity._policy import ValidationPolicy

__all__ = ["ConfigError", "Decision", "JwksCache", "TokenValidator", "ValidationPolicy"]

_log = logging.getLogger("observastack.identity")

ALLOWED_ALGORITHM = "RS256"
# The signature may be empty here (an unsecured JWS) so that alg "none" is named as the reason.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_KID_RE = re.compile(r"[A-Za-z0-9._~+/=:-]{1,128}")
_SUBJECT_RE = re.compile(r"[\x21-\x7e]{1,256}")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Decision:
    """The outcome of one validation.

    ``status`` is 200 (ok), 401 (the credential is missing or invalid, wrong audience included) or
    403 (a valid token whose subject is not on the allow-list). ``claims`` are the verified claims
    (empty when the signature was not verified); ``subject`` is the verified ``sub``.
    """

    ok: bool
    status: int
    subject: str | None
    reason: str
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def www_authenticate(self) -> str | None:
        """The ``WWW-Authenticate`` value for a rejection (RFC 6750), None when ok."""
        if self.ok:
            return None
        error = "insufficient_scope" if self.status == 403 else "invalid_token"
        return f'Bearer error="{error}", error_description="{self.safe_reason()}"'

    def safe_reason(self) -> str:
        """The reason as printable ASCII without quotes or backslashes (safe in headers, JSON)."""
        return _header_safe(self.reason)


class _Rejected(Exception):
    def __init__(
        self, reason: str, *, status: int = 401, claims: Mapping[str, Any] = _EMPTY
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.claims = claims


class TokenValidator:
    """Validates bearer tokens against one ``ValidationPolicy``; thread-safe."""

    def __init__(
        self,
        policy: ValidationPolicy,
        *,
        jwks: JwksCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.jwks = jwks or JwksCache(
            policy.jwks_url,
            max_age_s=policy.jwks_cache_s,
            min_refetch_interval_s=policy.jwks_refetch_interval_s,
        )
        self._clock = clock
        self._jws = jwt.PyJWS(
            algorithms=[ALLOWED_ALGORITHM], options={"enforce_minimum_key_length": True}
        )

    def close(self) -> None:
        self.jwks.close()

    def check_authorization(
        self, authorization: str | Sequence[str] | None, *, path: str, method: str | None = None
    ) -> Decision:
        """Validate the ``Authorization`` header value(s) of one request and log the decision.

        ``authorization`` is the header's value, or all its values when the request carried it
        more than once (then it is rejected); ``path`` and ``method`` only go to the log line.
        """
        try:
            token = self._bearer_token(authorization)
            decision = self._validate(token)
        except _Rejected as rejected:
            decision = _rejection(rejected)
        self._log(decision, path, method)
        return decision

    def validate(self, token: str) -> Decision:
        """Validate a bare token (no header parsing, no log line; see ``check_authorization``)."""
        try:
            return self._validate(token)
        except _Rejected as rejected:
            return _rejection(rejected)

    def _bearer_token(self, authorization: str | Sequence[str] | None) -> str:
        if authorization is None:
            values: list[str] = []
        elif isinstance(authorization, str):
            values = [authorization]
        else:
            values = [value for value in authorization if value.strip()]
        if len(values) > 1:
            raise _Rejected("more than one Authorization header")
        if not values or not values[0].strip():
            raise _Rejected("missing bearer token")
        value = values[0]
        if len(value) > self.policy.max_token_bytes + 64:
            raise _Rejected("authorization header too large")
        parts = value.split()
        if parts[0].lower() != "bearer":
            raise _Rejected("unsupported authorization scheme (expected Bearer)")
        if len(parts) == 1:
            raise _Rejected("missing bearer token")
        if len(parts) > 2 or "," in parts[1]:
            raise _Rejected("more than one token in the Authorization header")
        return parts[1]

    def _validate(self, token: str) -> Decision:
        policy = self.policy
        if len(token) > policy.max_token_bytes:
            raise _Rejected(f"token too large (over {policy.max_token_bytes} bytes)")
        if not _TOKEN_RE.fullmatch(token):
            segments = token.count(".") + 1
            if segments != 3:
                raise _Rejected(f"malformed token: expected 3 segments, got {segments}")
            raise _Rejected("malformed token: segments are not base64url")
        header = _json_object(token.partition(".")[0], "header")
        kid = self._check_header(header)
        try:
            key = self.jwks.get_key(kid)
        except JwksUnavailableError:
            raise _Rejected("signing keys unavailable") from None
        if key is None:
            raise _Rejected("unknown kid")
        try:
            payload_bytes = self._jws.decode_complete(token, key, [ALLOWED_ALGORITHM])["payload"]
        except jwt.InvalidSignatureError:
            raise _Rejected("signature verification failed") from None
        except jwt.DecodeError:
            raise _Rejected("malformed token: undecodable segment") from None
        except jwt.PyJWTError as exc:
            raise _Rejected(f"invalid token ({type(exc).__name__})") from None
        try:
            claims = json.loads(payload_bytes)
        except (ValueError, RecursionError):
            raise _Rejected("malformed token: payload is not JSON") from None
        if not isinstance(claims, dict):
            raise _Rejected("malformed token: payload is not a JSON object")
        subject = self._check_claims(claims)
        return Decision(True, 200, subject, "ok", MappingProxyType(claims))

    def _check_header(self, header: dict[str, Any]) -> str:
        alg = header.get("alg")
        if alg != ALLOWED_ALGORITHM:
            raise _Rejected(f"algorithm not allowed: {_short(alg)}")
        if "crit" in header:
            raise _Rejected("unsupported critical header parameter")
        if "b64" in header:
            raise _Rejected("unsupported header parameter b64")
        typ = header.get("typ", "JWT")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise _Rejected("unsupported token type (typ)")
        if "kid" not in header:
            raise _Rejected("missing kid")
        kid = header["kid"]
        if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
            raise _Rejected("invalid kid")
        return kid

    def _check_claims(self, claims: dict[str, Any]) -> str:
        policy = self.policy
        verified = MappingProxyType(claims)
        for name in ("iss", "aud", "exp", "iat", "sub"):
            if name not in claims:
                raise _Rejected(f"missing required claim: {name}", claims=verified)
        if claims["iss"] != policy.issuer:
            raise _Rejected("wrong issuer", claims=verified)
        aud = claims["aud"]
        if isinstance(aud, list):
            raise _Rejected("audience must be a single string, not a list", claims=verified)
        if aud != policy.audience:
            raise _Rejected("wrong audience", claims=verified)
        exp = _numeric(claims, "exp")
        iat = _numeric(claims, "iat")
        now = self._clock()
        leeway = policy.leeway_s
        if exp <= now - leeway:
            raise _Rejected("token expired", claims=verified)
        if "nbf" in claims and _numeric(claims, "nbf") > now + leeway:
            raise _Rejected("token not yet valid (nbf)", claims=verified)
        if iat > now + leeway:
            raise _Rejected("token issued in the future (iat)", claims=verified)
        if exp <= iat:
            raise _Rejected("token expires before it was issued", claims=verified)
        if policy.max_lifetime_s is not None and exp - iat > policy.max_lifetime_s:
            raise _Rejected(
                f"token lifetime {exp - iat:.0f}s exceeds policy {policy.max_lifetime_s}s",
                claims=verified,
            )
        if policy.max_age_s is not None and now - iat > policy.max_age_s + leeway:
            raise _Rejected(
                f"token too old ({now - iat:.0f}s since iat, policy {policy.max_age_s}s)",
                claims=verified,
            )
        subject = claims["sub"]
        if not isinstance(subject, str) or not _SUBJECT_RE.fullmatch(subject):
            raise _Rejected("invalid sub claim", claims=verified)
        if policy.allowed_subjects and not self._subject_allowed(claims, subject):
            raise _Rejected("subject not allowed", status=403, claims=verified)
        return subject

    def _subject_allowed(self, claims: Mapping[str, Any], subject: str) -> bool:
        allowed = self.policy.allowed_subjects
        if subject in allowed:
            return True
        email = claims.get("email")
        return isinstance(email, str) and claims.get("email_verified") is True and email in allowed

    def _log(self, decision: Decision, path: str, method: str | None) -> None:
        level = logging.INFO if decision.ok else logging.WARNING
        if not _log.isEnabledFor(level):
            return
        email = decision.claims.get("email")
        record = {
            "event": "authz_decision",
            "outcome": "allow" if decision.ok else "deny",
            "status": decision.status,
            "reason": decision.reason,
            "subject": decision.subject,
            "email": email if isinstance(email, str) else None,
            "audience": self.policy.audience,
            "method": _short(method, 16) if method else None,
            "path": _short(path.split("?", 1)[0], 256),
        }
        _log.log(level, json.dumps(record, separators=(",", ":")))


def _rejection(rejected: _Rejected) -> Decision:
    subject = rejected.claims.get("sub")
    well_formed = isinstance(subject, str) and _SUBJECT_RE.fullmatch(subject) is not None
    return Decision(
        ok=False,
        status=rejected.status,
        subject=subject if well_formed else None,
        reason=rejected.reason,
        claims=rejected.claims,
    )


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise _Rejected(f"malformed token: {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise _Rejected(f"malformed token: {what} is not a JSON object")
    return value


def _numeric(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise _Rejected(f"invalid {name} claim (not a finite number)", claims=claims)


def _short(value: object, limit: int = 32) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _header_safe(text: str) -> str:
    # RFC 6750 error_description: printable ASCII except '"' and '\'.
    return "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "'" for ch in text)[:200]
