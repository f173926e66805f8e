"""ObservaStack: a pytest plugin, client library and CLI for a live system under test.

The path from a test to a signal: a fixture (``stack``, ``secure_client``, ``agent``, ``metrics``,
``load``, ``chaos``, ``token``; see docs/plugin.md) hands the test a client; the client talks to a
gateway of the stack (user-, secure- or observability-path) with a token where one is needed; the
gateway forwards to the backend or the Control Agent; the test reads the effect back on
``/metrics`` or from the agent. This module is the public face: everything importable from
``pytest_observastack`` is listed in ``__all__``; modules starting with ``_`` are private.
"""

from __future__ import annotations

from pytest_observastack._agent import AgentClient, AgentStatus, ProcessRef
from pytest_observastack._chaos import Chaos
from pytest_observastack._config_client import ConfigClient, Fault, Flag, RuntimeConfig
from pytest_observastack._downtime import ChaosEvent, ControlPlaneProbe, DowntimeWindow
from pytest_observastack._errors import (
    BuildError,
    ComposeError,
    ControlError,
    EngineError,
    MarkerError,
    MetricNotFound,
    ObservastackError,
    PostconditionFailed,
    ServiceNotReady,
    SignalRejected,
    SteadyStateNotRestored,
    TokenError,
    WaitTimeout,
)
from pytest_observastack._forge import TokenFactory
from pytest_observastack._load import LoadResult, LoadRun
from pytest_observastack._markers import LabMark
from pytest_observastack._metrics import Delta, MetricsClient, Scrape, Series
from pytest_observastack._stack import IdentitySettings, ServiceState, Stack, StackOptions
from pytest_observastack._target import Deployment
from pytest_observastack._tokens import (
    GceTokenSource,
    RefreshingAuth,
    TokenSource,
    VaultTokenSource,
)
from pytest_observastack._waits import wait_until

__all__ = [
    "AgentClient",
    "AgentStatus",
    "BuildError",
    "Chaos",
    "ChaosEvent",
    "ComposeError",
    "ConfigClient",
    "ControlError",
    "ControlPlaneProbe",
    "Delta",
    "Deployment",
    "DowntimeWindow",
    "EngineError",
    "Fault",
    "Flag",
    "GceTokenSource",
    "IdentitySettings",
    "LabMark",
    "LoadResult",
    "LoadRun",
    "MarkerError",
    "MetricNotFound",
    "MetricsClient",
    "ObservastackError",
    "PostconditionFailed",
    "ProcessRef",
    "RefreshingAuth",
    "RuntimeConfig",
    "Scrape",
    "Series",
    "ServiceNotReady",
    "ServiceState",
    "SignalRejected",
    "Stack",
    "StackOptions",
    "SteadyStateNotRestored",
    "TokenError",
    "TokenFactory",
    "TokenSource",
    "VaultTokenSource",
    "WaitTimeout",
    "wait_until",
]
