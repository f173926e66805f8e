"""The identity package's exception tree.

Messages say what happened, the observed values and what to do next; they never contain a token::

    IdentityError
     ├── ConfigError            configuration missing or invalid (also a ValueError)
     ├── JwksUnavailableError   the signing keys cannot be had and the cached ones are too old
     └── BootstrapError         configuring Vault (or its stand-in) failed at a named step
"""

from __future__ import annotations

__all__ = ["BootstrapError", "ConfigError", "IdentityError", "JwksUnavailableError"]


class IdentityError(Exception):
    """Base class of every error raised by the identity package."""


class ConfigError(IdentityError, ValueError):
    """Configuration is missing or invalid; raised at start, before serving anything."""


class JwksUnavailableError(IdentityError):
    """No fresh JWKS: the last fetch failed and the cached keys (if any) are past their lifetime."""


class BootstrapError(IdentityError):
    """Bootstrapping Vault failed; the message names the step and the address."""
