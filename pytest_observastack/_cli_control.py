"""``observastack config|fault|flag ...``: the application channel from the command line.

Each verb talks to ``/config/*`` through the secure-path with a fresh Vault token
(``ConfigClient``); output is JSON so scripts can read it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import httpx

from pytest_observastack._config_client import ConfigClient
from pytest_observastack._stack import Stack
from pytest_observastack._tokens import RefreshingAuth

__all__ = ["add_control_verbs", "parse_assignments"]

StackFactory = Callable[[argparse.Namespace], Stack]


def parse_value(text: str) -> Any:
    """JSON when it parses (``5``, ``true``, ``"x"``, ``{...}``), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["rate_limit.rps=5", "request_timeout_ms=800"]`` → a nested patch document."""
    patch: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {pair!r}")
        node = patch
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise argparse.ArgumentTypeError(f"{key!r} mixes a value and nested keys")
        node[leaf] = parse_value(raw)
    return patch


@contextmanager
def _client(args: argparse.Namespace, make_stack: StackFactory) -> Iterator[ConfigClient]:
    stack = make_stack(args)
    source = stack.token_source()
    try:
        with httpx.Client(base_url=stack.url("secure"), auth=RefreshingAuth(source), timeout=60,
                          trust_env=False) as http:  # fmt: skip
            yield ConfigClient(http)
    finally:
        source.close()


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def add_control_verbs(sub: Any, make_stack: StackFactory, project_default: str) -> None:
    """Register ``config``, ``fault`` and ``flag`` on the top-level subparsers."""

    def group(name: str, help_: str) -> Any:
        parser = sub.add_parser(name, help=help_, description=help_)
        return parser.add_subparsers(dest=f"{name}_verb", required=True, metavar="VERB")

    def leaf(parent: Any, name: str, help_: str, run: Callable[[argparse.Namespace, ConfigClient],
             Any]) -> argparse.ArgumentParser:  # fmt: skip
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
        parser.add_argument("--project", default=project_default)

        def func(args: argparse.Namespace) -> int:
            with _client(args, make_stack) as client:
                _print(run(args, client))
            return 0

        parser.set_defaults(func=func)
        return parser

    config = group("config", "runtime configuration of the SUT (/config/runtime)")
    leaf(config, "get", "print the configuration document with its version", _config_get)
    p = leaf(config, "set", "change settings: KEY=VALUE ... (dotted keys nest; JSON values)",
             _config_set)  # fmt: skip
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")

    fault = group("fault", "failure injection (/config/faults)")
    p = leaf(fault, "add", "inject a fault: KIND --duration S [--param k=v ...]", _fault_add)
    p.add_argument("kind", help="latency, error, cpu, memory or pool_exhaustion")
    p.add_argument("--duration", type=float, required=True, help="seconds (mandatory)")
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    leaf(fault, "list", "active faults", lambda a, c: [asdict(f) for f in c.faults()])
    p = leaf(fault, "clear", "delete one fault (ID) or all of them", _fault_clear)
    p.add_argument("id", nargs="?", help="fault id (default: all)")

    flag = group("flag", "feature flags (/config/flags)")
    p = leaf(flag, "set", "set a flag: NAME VALUE [--variants a,b,c]", _flag_set)
    p.add_argument("name")
    p.add_argument("value", help="true/false, or a variant name")
    p.add_argument("--variants", default=None, help="comma-separated variants (variant flags)")
    leaf(flag, "list", "every flag with its value",
         lambda a, c: {name: asdict(f) for name, f in c.flags().items()})  # fmt: skip


def _config_get(args: argparse.Namespace, client: ConfigClient) -> dict[str, Any]:
    config = client.get_config()
    return {"version": config.version, "etag": config.etag, **dict(config.settings)}


def _config_set(args: argparse.Namespace, client: ConfigClient) -> dict[str, Any]:
    config = client.set_config(**parse_assignments(args.assignments))
    return {"version": config.version, **dict(config.settings)}


def _fault_add(args: argparse.Namespace, client: ConfigClient) -> dict[str, Any]:
    params = parse_assignments(args.param)
    return asdict(client.inject(args.kind, duration_s=args.duration, **params))


def _fault_clear(args: argparse.Namespace, client: ConfigClient) -> dict[str, Any]:
    if args.id:
        client.delete_fault(args.id)
        return {"cleared": [args.id]}
    return {"cleared": client.clear_faults()}


def _flag_set(args: argparse.Namespace, client: ConfigClient) -> dict[str, Any]:
    variants = args.variants.split(",") if args.variants else None
    return asdict(client.set_flag(args.name, parse_value(args.value), variants=variants))
