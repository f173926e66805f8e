"""The small HTTP servers' shared lifecycle (Vault stand-in, metadata emulator, JWKS relay).

Each wraps a ``ThreadingHTTPServer``: tests ``start()`` it on a daemon thread (or use it as a
context manager); ``python -m ...`` runs it in the foreground until SIGTERM/SIGINT.
"""

from __future__ import annotations

import signal
import socketserver
import threading
from types import FrameType, TracebackType
from typing import Self

__all__ = ["BackgroundHTTPServer", "exit_on_sigterm"]


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_on_sigterm() -> None:
    """SIGTERM ends the process cleanly. Call it before binding the socket, so that a TERM
    arriving as soon as the server answers cannot find the default action still in place."""
    signal.signal(signal.SIGTERM, _terminate)


class BackgroundHTTPServer:
    """Start/stop plumbing around ``self._server`` (set by the subclass before ``__init__``)."""

    thread_name = "http-server"

    def __init__(self, server: socketserver.BaseServer) -> None:
        self._server = server
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def serve_until_terminated(self) -> int:
        """Serve in the foreground until SIGTERM (see ``exit_on_sigterm``) or Ctrl-C; exit 0."""
        try:
            self.serve_forever()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.stop()
        return 0

    def _before_close(self) -> None:
        """Hook: e.g. cut open keep-alive connections, as a process exit would."""

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._before_close()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
