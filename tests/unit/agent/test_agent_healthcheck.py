"""``python -m agent.healthcheck``: exit 0 only for a 200 from /agent/healthz."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from agent.healthcheck import main


@pytest.fixture
def health_server() -> Iterator[Callable[[int], int]]:
    """Factory: a local server answering /agent/healthz with a given status; returns its port."""
    servers: list[HTTPServer] = []

    def start(status: int) -> int:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = status if self.path == "/agent/healthz" else 404
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_exit_code_follows_the_answer(
    health_server: Callable[[int], int], status: int, code: int
) -> None:
    port = health_server(status)
    assert main({"OBSERVASTACK_AGENT_PORT": str(port)}) == code


def test_nothing_listening_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    port = 1  # privileged and unused: connection refused
    assert main({"OBSERVASTACK_AGENT_PORT": str(port)}, timeout=1) == 1
    assert "unhealthy: http://127.0.0.1:1/agent/healthz" in capsys.readouterr().err
