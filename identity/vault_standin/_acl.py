"""ACL policies for the Vault stand-in: parse the subset the project writes, answer "may it?".

Accepted policy text (HCL or Vault's JSON form), nothing else::

    path "identity/oidc/token/secure-path" {
      capabilities = ["read"]
    }

Paths are exact, or end in ``*`` (prefix glob); ``+`` matches one segment. The most specific
matching rule wins (exact before glob, longer before shorter), ``deny`` beats everything, like
Vault. Any other syntax (``allowed_parameters``, ``min_wrapping_ttl``, ...) is refused with a clear
error instead of being silently ignored: the stand-in must never be looser than Vault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT_POLICY", "AclRule", "is_allowed", "parse_policy"]

_CAPABILITIES = frozenset(
    {"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe", "recover"}
)
_COMMENT = re.compile(r"/\*.*?\*/|#[^\n]*|//[^\n]*", re.S)
_BLOCK = re.compile(
    r'\s*path\s+"(?P<path>[^"\n]+)"\s*\{\s*capabilities\s*=\s*\[(?P<caps>[^\]]*)\]\s*,?\s*\}\s*'
)
_QUOTED = re.compile(r'\s*"([a-z]+)"\s*')


@dataclass(frozen=True)
class AclRule:
    path: str
    capabilities: frozenset[str]

    def matches(self, path: str) -> bool:
        pattern = self.path
        glob = pattern.endswith("*")
        if glob:
            pattern = pattern[:-1]
        if "+" not in pattern:
            return path.startswith(pattern) if glob else path == pattern
        want = pattern.split("/")
        have = path.split("/")
        if len(have) < len(want) or (not glob and len(have) != len(want)):
            return False
        return all(
            w == "+" or w == h or (glob and i == len(want) - 1 and h.startswith(w))
            for i, (w, h) in enumerate(zip(want, have, strict=False))
        )

    def specificity(self) -> tuple[int, int, int]:
        return (0 if self.path.endswith("*") else 1, -self.path.count("+"), len(self.path))


# Vault's built-in "default" policy, reduced to what hvac clients use here.
DEFAULT_POLICY = (AclRule("auth/token/lookup-self", frozenset({"read"})),)


def parse_policy(text: str) -> tuple[AclRule, ...]:
    """Parse HCL or JSON policy text; ValueError with a clear message for anything else."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return _parse_json(stripped)
    body = _COMMENT.sub("", text)
    rules: list[AclRule] = []
    position = 0
    while position < len(body):
        match = _BLOCK.match(body, position)
        if match is None:
            if not body[position:].strip():
                break
            raise ValueError(
                "failed to parse policy: the Vault stand-in understands only "
                '`path "<path>" { capabilities = [...] }` blocks'
            )
        caps = [c for c in match.group("caps").split(",") if c.strip()]
        names = []
        for cap in caps:
            quoted = _QUOTED.fullmatch(cap)
            if quoted is None:
                raise ValueError(f"failed to parse policy: bad capability {cap.strip()!r}")
            names.append(quoted.group(1))
        rules.append(_rule(match.group("path"), names))
        position = match.end()
    return tuple(rules)


def _parse_json(text: str) -> tuple[AclRule, ...]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"failed to parse policy: {exc}") from exc
    paths = document.get("path") if isinstance(document, dict) else None
    if not isinstance(paths, dict) or set(document) != {"path"}:
        raise ValueError('failed to parse policy: expected {"path": {...}}')
    rules = []
    for path, block in paths.items():
        if not isinstance(block, dict) or set(block) != {"capabilities"}:
            raise ValueError(f"failed to parse policy: path {path!r} needs only capabilities")
        caps = block["capabilities"]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ValueError(f"failed to parse policy: capabilities of {path!r} must be strings")
        rules.append(_rule(path, caps))
    return tuple(rules)


def _rule(path: str, capabilities: Iterable[str]) -> AclRule:
    caps = frozenset(capabilities)
    unknown = caps - _CAPABILITIES
    if unknown:
        raise ValueError(f"failed to parse policy: invalid capability {sorted(unknown)[0]!r}")
    return AclRule(path.lstrip("/"), caps)


def is_allowed(rule_sets: Iterable[Iterable[AclRule]], path: str, capabilities: set[str]) -> bool:
    """True if the most specific rules matching ``path`` grant one of ``capabilities``."""
    matching = [rule for rules in rule_sets for rule in rules if rule.matches(path)]
    if not matching:
        return False
    best = max(rule.specificity() for rule in matching)
    granted: set[str] = set()
    for rule in matching:
        if rule.specificity() == best:
            granted |= rule.capabilities
    return "deny" not in granted and bool(granted & capabilities)
