"""Which signals the agent delivers, and delivering them to the bound master only.

Input: a signal name from an API caller. ``parse_signal`` accepts HUP, TERM, KILL, USR1, TTIN and
TTOU, case-insensitive, with or without the ``SIG`` prefix; it rejects numbers (they differ between
platforms and hide intent), unknown names and real signals the agent does not deliver (SIGSTOP...)
with a reason for the caller (``InvalidSignal``).

Output: a signal sent to exactly one process, the Gunicorn master the agent bound to.
``open_target`` refuses PID 1, the namespace root and the agent itself, then opens a pidfd on the
master and checks, through that pidfd, that it is still the same (pid, start time) and still
titled as a master; the signal then goes through the pidfd, so a recycled pid can never receive
it. Where pidfds are not available (old kernels, seccomp) it falls back to re-checking and
``os.kill``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from types import TracebackType

from agent.discovery import Discovery, ProcessId
from agent.errors import InvalidSignal, SignalRefused

__all__ = [
    "ALLOWED_SIGNALS",
    "TERMINAL_SIGNALS",
    "Target",
    "open_target",
    "parse_signal",
    "parse_signal_request",
]

ALLOWED_SIGNALS: dict[str, signal.Signals] = {
    "HUP": signal.SIGHUP,
    "TERM": signal.SIGTERM,
    "KILL": signal.SIGKILL,
    "USR1": signal.SIGUSR1,
    "TTIN": signal.SIGTTIN,
    "TTOU": signal.SIGTTOU,
}
# Signals after which the master (and with it the backend's PID namespace) goes away.
TERMINAL_SIGNALS = frozenset({signal.SIGTERM, signal.SIGKILL})

_ALLOWED_TEXT = ", ".join(ALLOWED_SIGNALS)
_WHY_NOT: dict[str, str] = {
    "STOP": "it would freeze the master, and a stopped master serves nothing and reaps nothing",
    "CONT": "the agent never stops the master, so there is nothing to continue",
    "INT": "it is Gunicorn's quick shutdown; use TERM (graceful) or KILL",
    "QUIT": "it is Gunicorn's quick shutdown; use TERM (graceful) or KILL",
    "USR2": "it re-executes Gunicorn into a second master the agent does not track",
    "WINCH": "it stops all workers while the master stays; use TTOU to remove one",
}


def parse_signal(raw: object) -> signal.Signals:
    """The signal ``raw`` names, or ``InvalidSignal`` with the reason it is refused."""
    if not isinstance(raw, str):
        raise InvalidSignal(
            f'"signal" must be a string such as "HUP", got {type(raw).__name__} {raw!r:.40}; '
            f"accepted: {_ALLOWED_TEXT}"
        )
    shown = repr(raw) if len(raw) <= 40 else repr(raw[:40]) + "..."
    if raw.lstrip("+-").isdigit():
        raise InvalidSignal(
            f"signal numbers are not accepted ({shown}): they differ between platforms; "
            f"accepted: {_ALLOWED_TEXT}"
        )
    upper = raw.upper()
    name = upper[3:] if upper.startswith("SIG") else upper
    if name in ALLOWED_SIGNALS:
        return ALLOWED_SIGNALS[name]
    if name.isalnum() and isinstance(getattr(signal, "SIG" + name, None), signal.Signals):
        why = _WHY_NOT.get(name, "the agent only delivers Gunicorn's control signals")
        raise InvalidSignal(f"SIG{name} is not delivered: {why}; accepted: {_ALLOWED_TEXT}")
    raise InvalidSignal(f"unknown signal name {shown}; accepted: {_ALLOWED_TEXT}")


class Target:
    """A checked handle on the master; ``send`` delivers to that exact process or refuses."""

    def __init__(self, ident: ProcessId, pidfd: int | None, discovery: Discovery) -> None:
        self.ident = ident
        self._pidfd = pidfd
        self._discovery = discovery

    def send(self, sig: signal.Signals) -> None:
        """Deliver ``sig``; ``SignalRefused`` if the process is gone or not ours to signal."""
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            elif self._discovery.is_master(self.ident):
                os.kill(self.ident.pid, sig)
            else:
                raise ProcessLookupError(errno.ESRCH, "no longer the bound master")
        except ProcessLookupError:
            raise SignalRefused(
                f"master {self.ident.pid} (started {self.ident.create_time}) is gone; "
                "nothing was sent. The agent exits and rebinds once the backend is back"
            ) from None
        except PermissionError:
            raise SignalRefused(
                f"not permitted to signal pid {self.ident.pid}: the agent must run as the same "
                "user as Gunicorn and share the backend's PID namespace"
            ) from None

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __enter__(self) -> Target:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_target(bound: ProcessId, discovery: Discovery) -> Target:
    """Check that ``bound`` may be signalled and is still the master; return a handle on it."""
    forbidden = {
        discovery.namespace_root_pid: "the namespace root",
        discovery.own_pid: "the agent itself",
        1: "PID 1 (the namespace's init)",
    }
    if bound.pid <= 1 or bound.pid in forbidden:
        what = forbidden.get(bound.pid, f"pid {bound.pid}")
        raise SignalRefused(f"refusing to signal {what}: only the Gunicorn master is a target")
    pidfd = _pidfd_open(bound.pid)
    if not discovery.is_master(bound):
        if pidfd is not None:
            os.close(pidfd)
        raise SignalRefused(
            f"pid {bound.pid} is no longer the master the agent bound to "
            f"(started {bound.create_time}); nothing was sent. The agent exits and rebinds"
        )
    return Target(bound, pidfd, discovery)


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None  # is_master() reports it gone, with the usual message
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            return None  # no pidfd here (kernel or seccomp): fall back to check + kill
        raise


def parse_signal_request(body: bytes) -> tuple[str, signal.Signals]:
    """Read ``{"signal": NAME}``; return (what was asked, as text; the signal) or InvalidSignal."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidSignal('the body must be JSON such as {"signal": "HUP"}') from None
    if not isinstance(data, dict):
        raise InvalidSignal(
            f'the body must be a JSON object such as {{"signal": "HUP"}}, got {type(data).__name__}'
        )
    if "signal" not in data:
        raise InvalidSignal('missing field "signal"; send {"signal": "HUP"} or another name')
    extra = sorted(str(key) for key in data if key != "signal")
    if extra:
        raise InvalidSignal(f'unexpected field(s) {extra}: only "signal" is accepted')
    raw = data["signal"]
    requested = raw if isinstance(raw, str) else json.dumps(raw)
    return requested[:40], parse_signal(raw)
