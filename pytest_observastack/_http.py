"""Small helpers for the clients' HTTP answers."""

from __future__ import annotations

from typing import Any

import httpx

from pytest_observastack._errors import ControlError

__all__ = ["json_object"]


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or a ``ControlError`` saying what came instead."""
    try:
        data = response.json()
    except ValueError as exc:
        raise ControlError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not JSON: {response.text[:200]!r}"
        ) from exc
    if not isinstance(data, dict):
        raise ControlError(f"expected a JSON object, got {data!r:.200}")
    return data
