"""What the Vault stand-in's state modules share: Vault's error, and input coercions."""

from __future__ import annotations

from identity.vault_standin._keys import parse_duration

__all__ = ["VaultFailure", "denied", "duration", "list_of_str"]


class VaultFailure(Exception):
    """An error answered as ``{"errors": [message]}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def denied() -> VaultFailure:
    return VaultFailure(403, "permission denied")


def list_of_str(value: object, name: str) -> list[str]:
    """A list of strings from a JSON list or a comma-separated string (Vault accepts both)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise VaultFailure(400, f"{name} must be a list of strings or a comma-separated string")


def duration(value: object, name: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise VaultFailure(400, f"{name}: {exc}") from None
