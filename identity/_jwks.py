"""A small JWKS cache: bounded key lifetime, one rate-limited refetch on an unknown ``kid``.

Why not ``jwt.PyJWKClient``: its cooldown refuses any refetch for 30 s after the last one (a freshly
rotated key is rejected meanwhile), and its ``cache_keys`` LRU never forgets a key that the issuer
has removed. This cache instead:

- trusts a fetched key set for ``max_age_s`` only (after that a fetch must succeed, or every
  lookup fails closed with ``JwksUnavailableError``);
- on an unknown ``kid`` refetches once, unless a fetch (successful or not) started less than
  ``min_refetch_interval_s`` ago: that bounds what a flood of made-up ``kid`` values costs the
  issuer to one request per interval;
- keeps only RSA signing keys usable with RS256 (``kty`` RSA, ``use`` sig or absent, ``alg`` RS256
  or absent, 2048 bits or more, a ``kid``); a ``kid`` listed twice is dropped as ambiguous.

Data enters from exactly one place, the configured JWKS URL (httpx, short timeouts, no redirects,
size-capped body); no key is ever taken from a token. Lookups are thread-safe and lock-free on
the warm path.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from jwt import PyJWK, PyJWTError

from identity._errors import JwksUnavailableError

__all__ = ["JwksCache", "parse_jwks"]

_log = logging.getLogger("observastack.identity.jwks")

_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class _Snapshot:
    keys: Mapping[str, PyJWK]
    fetched_at: float


def parse_jwks(document: object) -> dict[str, PyJWK]:
    """Return the usable RS256 verification keys of a JWKS document, by ``kid``.

    Raises ``ValueError`` when the document is not a JWKS at all; unusable keys are skipped.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS document (expected an object with a "keys" list)')
    keys: dict[str, PyJWK] = {}
    ambiguous: set[str] = set()
    for item in document["keys"]:
        key = _usable_key(item)
        if key is None:
            continue
        kid = item["kid"]
        if kid in keys or kid in ambiguous:
            ambiguous.add(kid)
            keys.pop(kid, None)
            continue
        keys[kid] = key
    if ambiguous:
        _log.warning(json.dumps({"event": "jwks_ambiguous_kid", "kids": sorted(ambiguous)[:10]}))
    return keys


def _usable_key(item: object) -> PyJWK | None:
    if not isinstance(item, dict):
        return None
    kid = item.get("kid")
    if not isinstance(kid, str) or not kid:
        return None
    if item.get("kty") != "RSA" or item.get("use", "sig") != "sig":
        return None
    if item.get("alg", "RS256") != "RS256" or "d" in item:
        return None
    try:
        key = PyJWK(item, algorithm="RS256")
    except PyJWTError:
        return None
    if getattr(key.key, "key_size", 0) < _MIN_RSA_BITS:
        return None
    return key


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # httpx builds a fresh SSL context (tens of ms) per client unless given one: build it once.
    return httpx.create_ssl_context()


def _event(level: int, **fields: object) -> None:
    _log.log(level, json.dumps({"event": "jwks_fetch", **fields}))


class JwksCache:
    """Thread-safe JWKS cache for one URL; see the module docstring for the rules."""

    def __init__(
        self,
        url: str,
        *,
        max_age_s: float = 60.0,
        min_refetch_interval_s: float = 2.0,
        timeout_s: float = 2.0,
        max_bytes: int = 256 * 1024,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.max_age_s = max_age_s
        self.min_refetch_interval_s = min_refetch_interval_s
        self._max_bytes = max_bytes
        self._clock = clock
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 1.0)),
            follow_redirects=False,
            verify=_tls_context(),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._last_attempt: float | None = None
        self._last_error = "no fetch attempted yet"
        self.fetch_count = 0

    def get_key(self, kid: str) -> PyJWK | None:
        """The key for ``kid``, or None if the issuer does not publish it.

        Raises ``JwksUnavailableError`` when no key set younger than ``max_age_s`` can be had.
        """
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - snapshot.fetched_at < self.max_age_s:
            key = snapshot.keys.get(kid)
            if key is not None:
                return key
            snapshot = self._refresh(stale_before=snapshot.fetched_at)
            return snapshot.keys.get(kid)
        return self._refresh(stale_before=None).keys.get(kid)

    def warm(self) -> bool:
        """Fetch the key set now if it is not fresh (e.g. at start); True if fresh keys are held."""
        try:
            self._refresh(stale_before=None)
        except JwksUnavailableError:
            return False
        return True

    def close(self) -> None:
        self._client.close()

    def _refresh(self, *, stale_before: float | None) -> _Snapshot:
        """Fetch unless rate-limited; return a fresh snapshot or raise JwksUnavailableError.

        ``stale_before`` is the fetch time of the snapshot the caller found wanting (unknown kid);
        if another thread replaced it while we waited for the lock, that newer one is used.
        """
        with self._lock:
            now = self._clock()
            current = self._snapshot
            if (
                current is not None
                and stale_before is not None
                and current.fetched_at > stale_before
                and now - current.fetched_at < self.max_age_s
            ):
                return current
            limited = (
                self._last_attempt is not None
                and now - self._last_attempt < self.min_refetch_interval_s
            )
            if not limited:
                self._last_attempt = now
                try:
                    current = _Snapshot(self._fetch(), fetched_at=now)
                except JwksUnavailableError as exc:
                    self._last_error = str(exc)
                    _event(logging.WARNING, outcome="error", url=self.url, error=str(exc))
                else:
                    self._snapshot = current
                    self._last_error = ""
                    _event(logging.INFO, outcome="ok", url=self.url, keys=len(current.keys))
                    return current
            if current is not None and now - current.fetched_at < self.max_age_s:
                return current
            raise JwksUnavailableError(
                f"no usable JWKS from {self.url}: {self._last_error or 'rate-limited'}; "
                f"next fetch attempt in at most {self.min_refetch_interval_s:g} s"
            )

    def _fetch(self) -> dict[str, PyJWK]:
        self.fetch_count += 1
        try:
            with self._client.stream("GET", self.url) as response:
                if response.status_code != 200:
                    raise JwksUnavailableError(f"HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise JwksUnavailableError(f"response larger than {self._max_bytes} bytes")
        except httpx.HTTPError as exc:
            raise JwksUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        try:
            document: Any = json.loads(body)
            return parse_jwks(document)
        except ValueError as exc:
            raise JwksUnavailableError(f"invalid JWKS: {exc}") from exc
