"""pytest entry point (``pytest11``): options, markers, reports and fixtures of ObservaStack.

Fixtures are thin: the work happens in ``Stack``, ``open_deployment``, ``Chaos``, ``LabReport``
and the clients, which run without pytest. ``observastack_options`` is the configuration fixture
a ``conftest.py`` may override; every other fixture is a resource built from it. Documented,
with an example each, in docs/plugin.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from pytest_observastack._agent import AgentClient
from pytest_observastack._chaos import Chaos
from pytest_observastack._compose import engine_problem
from pytest_observastack._config_client import ConfigClient
from pytest_observastack._downtime import ControlPlaneProbe
from pytest_observastack._errors import MarkerError, ObservastackError
from pytest_observastack._load import LoadRun
from pytest_observastack._markers import MARKERS, lab_mark, skip_reason
from pytest_observastack._metrics import MetricsClient
from pytest_observastack._options import PluginSettings, add_options, read_settings
from pytest_observastack._report import CHAOS_PROPERTY, LAB_PROPERTY, ReportPlugin
from pytest_observastack._stack import Stack, StackOptions
from pytest_observastack._target import Deployment, gcp_module, open_deployment, session_options
from pytest_observastack._tokens import RefreshingAuth, TokenSource

if TYPE_CHECKING:
    from pytest_observastack._forge import TokenFactory

__all__ = [
    "agent",
    "chaos",
    "config_client",
    "load",
    "metrics",
    "observastack_options",
    "secure_client",
    "stack",
    "token",
    "token_source",
    "user_client",
]

SETTINGS = pytest.StashKey[PluginSettings]()
MARK_ERROR = pytest.StashKey[str]()


# -- hooks ---------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    settings = read_settings(config)
    config.stash[SETTINGS] = settings
    if settings.gcp:
        gcp_module()  # a missing module is a usage error now, not a fixture error later
    if settings.worker is None:
        target = "gcp" if settings.gcp else "local"
        config.pluginmanager.register(ReportPlugin(settings.report, target=target),
                                      "observastack-report")  # fmt: skip


def pytest_itemcollected(item: pytest.Item) -> None:
    """Per test, before -m selects: the chaos marker, the lab's points, skips for the target."""
    if "chaos" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("chaos"):
        item.add_marker("chaos")
    try:
        lab = lab_mark(item.iter_markers("lab"), where=f"{item.nodeid}: ")
    except MarkerError as exc:
        item.stash[MARK_ERROR] = str(exc)
    else:
        if lab is not None:
            item.user_properties.append((LAB_PROPERTY, {"name": lab.name, "points": lab.points}))
    gcp = item.config.stash[SETTINGS].gcp
    reason = skip_reason([mark.name for mark in item.iter_markers()], gcp=gcp)
    if reason is not None:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(trylast=True)  # after -m and -k deselected what will not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Chaos tests run last (stable order otherwise): a failed restoration spoils nothing else.
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)
    settings = config.stash[SETTINGS]
    if settings.gcp or settings.worker is not None:
        return
    needing = [item for item in items if _needs_local_stack(item)]
    if needing:
        problem = engine_problem()
        if problem:
            raise pytest.UsageError(
                f"ObservaStack: {len(needing)} selected test(s) need the session stack, but "
                f"{problem}\nTo run only the tests that need no engine, deselect the others, "
                "e.g. -m 'not engine'"
            )


def _needs_local_stack(item: pytest.Item) -> bool:
    if item.get_closest_marker("skip") is not None:
        return False
    # The plugin's own stack fixture rests on observastack_options; a conftest that replaces
    # ``stack`` with a fake does not need the engine.
    return "observastack_options" in getattr(item, "fixturenames", ())


def pytest_runtest_setup(item: pytest.Item) -> None:
    message = item.stash.get(MARK_ERROR, None)
    if message is not None:
        pytest.fail(message, pytrace=False)


# -- configuration fixtures ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def observastack_options(pytestconfig: pytest.Config) -> StackOptions:
    """How the local session stack is stood up (override in conftest.py to change defaults)."""
    try:
        return session_options(pytestconfig.stash[SETTINGS])
    except ObservastackError as exc:
        failure = f"ObservaStack: {_described(exc)}"
    pytest.fail(failure, pytrace=False)


# -- resource fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def stack(observastack_options: StackOptions, pytestconfig: pytest.Config) -> Iterator[Deployment]:
    """The session's ObservaStack, up and healthy (the GCP deployment with --gcp); removed after."""
    settings = pytestconfig.stash[SETTINGS]
    with ExitStack() as exits:
        try:
            running = exits.enter_context(
                open_deployment(settings, observastack_options, say=_sayer(pytestconfig))
            )
        except ObservastackError as exc:
            failure = f"ObservaStack could not stand up the session stack: {_described(exc)}"
        else:
            failure = ""
        if failure:
            pytest.fail(failure, pytrace=False)  # outside `except`: no chained traceback
        yield running


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _sayer(config: pytest.Config) -> Callable[[str], None]:
    capture = config.pluginmanager.getplugin("capturemanager")
    terminal = config.pluginmanager.getplugin("terminalreporter")

    def say(message: str) -> None:
        if capture is None or terminal is None:
            print(f"[observastack] {message}", flush=True)
            return
        with capture.global_and_fixture_disabled():
            # Progress dots may share the line; write_line only breaks after a file name.
            writer = getattr(terminal, "_tw", None)
            if getattr(writer, "width_of_current_line", 0):
                terminal.write("\n")
            terminal.write_line(f"[observastack] {message}")

    return say


@pytest.fixture
def user_client(stack: Deployment) -> Iterator[httpx.Client]:
    """An httpx client on the user-path (``/api/*``), as a student or load generator sees it."""
    with httpx.Client(base_url=stack.url("user"), timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="session")
def token_source(stack: Deployment) -> Iterator[TokenSource]:
    """Where secure-path tokens come from: Vault (local) or the metadata server (``--gcp``)."""
    source = stack.token_source()
    yield source
    close = getattr(source, "close", None)
    if close is not None:
        close()


@pytest.fixture
def token(stack: Deployment, token_source: TokenSource) -> TokenFactory:
    """Mint tokens for the secure-path audience: ``valid()`` and broken ones (``expired()``...)."""
    try:
        from pytest_observastack._forge import TokenFactory
    except ImportError as exc:
        failure = f"the token fixture needs pytest_observastack._forge ({exc})"
    else:
        return TokenFactory(token_source, audience=stack.options.identity.audience)
    pytest.fail(failure, pytrace=False)


@pytest.fixture
def secure_client(stack: Deployment, token_source: TokenSource) -> Iterator[httpx.Client]:
    """An httpx client on the secure-path whose bearer token refreshes itself (and on a 401)."""
    # On GCP, verifiers also bound a token's age (iat + max_age_s); locally exp is the bound.
    max_age_s = getattr(stack.options.identity, "max_age_s", None)
    auth = RefreshingAuth(token_source, max_age_s=max_age_s)
    with httpx.Client(base_url=stack.url("secure"), auth=auth, timeout=30.0,
                      trust_env=False) as client:  # fmt: skip
        yield client


@pytest.fixture
def config_client(secure_client: httpx.Client) -> ConfigClient:
    """The application channel (``/config/*``): config, faults, flags, state — with ETags."""
    return ConfigClient(secure_client)


@pytest.fixture
def agent(secure_client: httpx.Client, user_client: httpx.Client) -> AgentClient:
    """The Control Agent through the secure-path: status, reload, terminate, kill, scale, ..."""
    return AgentClient(secure_client, user_client)


@pytest.fixture
def metrics(stack: Deployment) -> Iterator[MetricsClient]:
    """Scrape and query ``/metrics`` on the obs-path: value, wait_for, delta, quantile, rate."""
    with httpx.Client(base_url=stack.url("obs"), timeout=10.0, trust_env=False) as client:
        yield MetricsClient(client)


def _local(stack: Deployment, fixture: str, why: str) -> Stack:
    if not isinstance(stack, Stack):
        pytest.skip(f"{fixture}: {why}; not available with --gcp")
    return stack


@pytest.fixture
def load(stack: Deployment) -> Callable[..., LoadRun]:
    """A factory of bounded background loads on the user-path from the public side (loadgen)."""
    local = _local(stack, "load", "runs in the local loadgen container")

    def start(**kwargs: Any) -> LoadRun:
        return LoadRun(local, **kwargs)

    return start


@pytest.fixture
def chaos(
    request: pytest.FixtureRequest, stack: Deployment, agent: AgentClient, token_source: TokenSource
) -> Iterator[Chaos]:
    """Disrupt the stack (restart/kill/pause backend, kill agent, restart Vault, cut control)."""
    local = _local(stack, "chaos", "disrupting services needs the local Docker engine")
    probe = ControlPlaneProbe(local.url("secure"), token_source)
    disruptor = Chaos(local, agent, probe=probe)
    try:
        yield disruptor
    finally:
        probe.close()
        if disruptor.events:
            request.node.user_properties.append(
                (CHAOS_PROPERTY, [event.to_dict() for event in disruptor.events])
            )
