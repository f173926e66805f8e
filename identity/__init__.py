"""Identity for the ObservaStack control plane: who may use the secure-path, and how we know.

What it is for: one JWT validation path shared by every verifier (the secure-gateway's authz
service and the Control Agent), locally and on GCP, plus the local token issuer's setup.

How data enters and leaves:

- ``identity.validation``: ``Authorization`` header value -> ``Decision`` (status, subject, reason)
  and one JSON log line. Keys enter only from the configured JWKS URL (``JwksCache``), policy only
  from ``ValidationPolicy`` (built from ``OBSERVASTACK_JWT_*`` variables once, at start).
- ``identity.authz`` (``python -m identity.authz``): nginx ``auth_request`` subrequest in,
  204 + ``X-Observastack-Subject`` or 401/403 + ``WWW-Authenticate`` out.
- ``identity.bootstrap``: configures Vault (or the stand-in) through hvac so that it issues
  short-lived OIDC identity tokens whose ``aud`` is the secure-path audience.
- ``identity.vault_standin`` (``python -m identity.vault_standin``): a stand-in for Vault dev mode
  speaking the subset of Vault's HTTP API the project uses, for machines where Vault cannot be had.

Token *clients* (Vault and GCE token sources, the refreshing httpx auth) live in
``pytest_observastack._tokens``. The GCE metadata-server emulator lives in ``gcp``.
"""

from __future__ import annotations

from identity._errors import BootstrapError, ConfigError, IdentityError, JwksUnavailableError
from identity._jwks import JwksCache
from identity.validation import Decision, TokenValidator, ValidationPolicy

__all__ = [
    "BootstrapError",
    "ConfigError",
    "Decision",
    "IdentityError",
    "JwksCache",
    "JwksUnavailableError",
    "TokenValidator",
    "ValidationPolicy",
]
