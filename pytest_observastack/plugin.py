"""pytest entry point (``pytest11``): options, markers and fixtures of ObservaStack.

Fixtures are thin: the work happens in ``Stack`` and the clients, which run without pytest.
Configuration fixtures (``observastack_options``) can be overridden in a ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_observastack._agent import AgentClient
from pytest_observastack._load import LoadRun
from pytest_observastack._metrics import MetricsClient
from pytest_observastack._stack import Stack, StackOptions
from pytest_observastack._tokens import RefreshingAuth, TokenSource

__all__ = [
    "agent",
    "load",
    "metrics",
    "observastack_options",
    "secure_client",
    "stack",
    "token_source",
    "user_client",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("observastack", "ObservaStack testbed")
    options: list[tuple[str, str, str, str]] = [
        ("--observastack-keep", "observastack_keep", "bool",
         "leave the stack running after the session (for debugging)"),
        ("--observastack-reuse", "observastack_reuse", "bool",
         "attach to a running stack with the same compose files and image (and keep it)"),
        ("--observastack-project", "observastack_project", "string",
         "compose project name (default: unique per run and xdist worker)"),
        ("--observastack-no-build", "observastack_no_build", "bool",
         "do not build the image; use it as it is"),
        ("--observastack-vault", "observastack_vault", "string",
         "vault service: auto (real image if obtainable), real, standin"),
    ]  # fmt: skip
    for flag, ini, kind, help_ in options:
        if kind == "bool":
            group.addoption(flag, action="store_true", default=None, dest=ini, help=help_)
            parser.addini(ini, help_, type="bool", default=False)
        else:
            group.addoption(flag, default=None, dest=ini, help=help_)
            parser.addini(ini, help_, default="")
    group.addoption("--observastack-compose-file", action="append", default=None,
                    dest="observastack_compose_files",
                    help="extra compose file layered on top (repeatable)")  # fmt: skip
    parser.addini("observastack_compose_files", "extra compose files", type="paths", default=[])


def _opt(config: pytest.Config, name: str) -> object:
    value = config.getoption(name)
    return config.getini(name) if value is None else value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engine: the test needs a running Docker engine and the session stack"
    )


@pytest.fixture(scope="session")
def observastack_options(pytestconfig: pytest.Config) -> StackOptions:
    """How the session stack is stood up (override in conftest.py to change defaults)."""
    files = pytestconfig.getoption("observastack_compose_files") or pytestconfig.getini(
        "observastack_compose_files"
    )
    vault = str(_opt(pytestconfig, "observastack_vault") or "auto")
    if vault not in ("auto", "real", "standin"):
        raise pytest.UsageError(
            f"--observastack-vault must be auto, real or standin, not {vault!r}"
        )
    return StackOptions(
        project=str(_opt(pytestconfig, "observastack_project") or "") or None,
        extra_compose_files=tuple(Path(f) for f in files),
        keep=bool(_opt(pytestconfig, "observastack_keep")),
        reuse=bool(_opt(pytestconfig, "observastack_reuse")),
        build=not _opt(pytestconfig, "observastack_no_build"),
        vault=vault,
    )


@pytest.fixture(scope="session")
def stack(observastack_options: StackOptions) -> Iterator[Stack]:
    """The session's ObservaStack: built, up and healthy; torn down (down -v) at the end."""
    with Stack(observastack_options, say=_progress) as running:
        yield running


def _progress(message: str) -> None:
    print(f"\n[observastack] {message}", flush=True)


@pytest.fixture
def user_client(stack: Stack) -> Iterator[httpx.Client]:
    """An httpx client on the user-path (``/api/*``), as a student or load generator sees it."""
    with httpx.Client(base_url=stack.url("user"), timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def token_source(stack: Stack) -> Iterator[TokenSource]:
    """Where secure-path tokens come from: Vault (local) or the metadata server (``--gcp``)."""
    source = stack.token_source()
    yield source
    close = getattr(source, "close", None)
    if close is not None:
        close()


@pytest.fixture
def secure_client(stack: Stack, token_source: TokenSource) -> Iterator[httpx.Client]:
    """An httpx client on the secure-path whose bearer token refreshes itself (and on a 401)."""
    auth = RefreshingAuth(token_source)
    with httpx.Client(base_url=stack.url("secure"), auth=auth, timeout=30.0,
                      trust_env=False) as client:  # fmt: skip
        yield client


@pytest.fixture
def agent(secure_client: httpx.Client, user_client: httpx.Client) -> AgentClient:
    """The Control Agent through the secure-path: status, reload, terminate, kill, scale, ..."""
    return AgentClient(secure_client, user_client)


@pytest.fixture
def load(stack: Stack) -> Callable[..., LoadRun]:
    """Start a bounded background load on the user-path from the public side (``loadgen``)."""

    def start(**kwargs: Any) -> LoadRun:
        return LoadRun(stack, **kwargs)

    return start


@pytest.fixture
def metrics(stack: Stack) -> Iterator[MetricsClient]:
    """Scrape and query ``/metrics`` on the obs-path: value, wait_for, delta, quantile, rate."""
    with httpx.Client(base_url=stack.url("obs"), timeout=10.0, trust_env=False) as client:
        yield MetricsClient(client)
