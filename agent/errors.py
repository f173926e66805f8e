"""The agent's exception tree.

Every error the agent raises derives from ``AgentError``; messages say what happened, the observed
values, and what to do next::

    AgentError
     ├── ConfigError        the environment is invalid (raised once, at start)
     ├── MasterNotFound     no Gunicorn master is visible in the PID namespace
     ├── InvalidSignal      a requested signal name is not one the agent delivers (HTTP 400)
     └── SignalRefused      a signal was not sent: the target is gone, changed or forbidden (503)
"""

from __future__ import annotations

__all__ = ["AgentError", "ConfigError", "InvalidSignal", "MasterNotFound", "SignalRefused"]


class AgentError(Exception):
    """Base class of every error raised by the agent."""


class ConfigError(AgentError):
    """An environment variable is missing, malformed or out of range."""


class MasterNotFound(AgentError):
    """No Gunicorn master is visible; ``last_seen`` describes the candidates observed."""

    def __init__(self, message: str, last_seen: str = "") -> None:
        self.last_seen = last_seen
        super().__init__(message)


class InvalidSignal(AgentError):
    """The requested signal is not accepted; the message is the reason shown to the caller."""


class SignalRefused(AgentError):
    """The signal was not delivered because its target is gone, changed, or forbidden."""
