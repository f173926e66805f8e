"""The plugin's exception tree.

Every error the plugin, the client library or the CLI raises derives from ``ObservastackError``;
messages say what happened, what was observed, and what to do next::

    ObservastackError
     ├── EngineError            the Docker engine or Compose v2 is missing or not answering
     ├── ComposeError           a compose command failed (its output is attached)
     ├── BuildError             building the images failed
     ├── ServiceNotReady        a service did not become healthy / answer in time
     ├── WaitTimeout            a wait-until ran past its deadline (says what it last saw)
     ├── TokenError             no token could be obtained from the token source
     ├── ControlError           a control operation was refused or did not take effect
     │    ├── SignalRejected    the agent refused a signal (400 / 503)
     │    ├── PostconditionFailed  the operation was accepted but its effect was not observed
     │    └── SteadyStateNotRestored  a chaos action's disruption outlived its restoration
     ├── MarkerError            an ObservaStack marker is used with wrong arguments
     └── MetricNotFound         a scraped metric or series does not exist
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "ComposeError",
    "ControlError",
    "EngineError",
    "MarkerError",
    "MetricNotFound",
    "ObservastackError",
    "PostconditionFailed",
    "ServiceNotReady",
    "SignalRejected",
    "SteadyStateNotRestored",
    "TokenError",
    "WaitTimeout",
]


class ObservastackError(Exception):
    """Base class of every error raised by pytest_observastack."""


class EngineError(ObservastackError):
    """The Docker engine or Compose v2 is missing or not answering."""


class ComposeError(ObservastackError):
    """A ``docker compose`` command failed; ``output`` holds what it printed."""

    def __init__(self, message: str, output: str = "") -> None:
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(f"{message}\n--- output (last lines) ---\n{tail}" if tail else message)


class BuildError(ComposeError):
    """Building the images failed."""


class ServiceNotReady(ObservastackError):
    """A service did not become healthy or did not answer in time."""


class WaitTimeout(ObservastackError):
    """A wait-until ran past its deadline; ``last_seen`` is what it observed last."""

    def __init__(self, message: str, last_seen: object = None) -> None:
        self.last_seen = last_seen
        super().__init__(message)


class TokenError(ObservastackError):
    """No token could be obtained from the token source."""


class ControlError(ObservastackError):
    """A control operation was refused or did not take effect."""


class SignalRejected(ControlError):
    """The agent refused to deliver a signal."""


class PostconditionFailed(ControlError):
    """A control operation was accepted but its effect was not observed in time."""


class SteadyStateNotRestored(ControlError):
    """After a chaos action, the stack did not return to its steady state in time."""


class MarkerError(ObservastackError):
    """An ObservaStack marker (``lab``, ...) is used with wrong arguments."""


class MetricNotFound(ObservastackError):
    """A scraped metric or series does not exist."""
