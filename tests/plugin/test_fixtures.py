"""Fixture behaviour and user-facing messages, in pytester sessions that need no engine."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pytest_observastack import plugin
from pytest_observastack._errors import EngineError

FIXTURES = ["stack", "user_client", "token_source", "token", "secure_client", "agent", "metrics",
            "load", "chaos", "observastack_options"]  # fmt: skip


def test_every_fixture_is_listed_with_a_one_line_docstring(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")
    lines = result.stdout.lines
    for name in FIXTURES:
        (at,) = [i for i, line in enumerate(lines) if line.split(" ")[0] == name]
        assert lines[at + 1].startswith("    "), name
        assert lines[at + 1].strip(), name
        assert not lines[at + 2].strip(), f"{name}: the docstring should be one line"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            body = b"# TYPE hits counter\nhits_total 3.0\n"
        elif self.path == "/agent/status":
            auth = self.headers.get("Authorization", "")
            body = json.dumps({"auth": auth}).encode()
        else:
            body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


FAKE_STACK = """
import types
import pytest

class Source:
    def token(self, audience=None):
        return "h.p." + str(audience)
    def invalidate(self):
        pass

class FakeDeployment:
    project = "fake"
    options = types.SimpleNamespace(identity=types.SimpleNamespace(audience="aud-x"))
    def url(self, name):
        return "URL"
    def endpoints(self):
        return {n: "URL" for n in ("user", "secure", "obs", "vault")}
    def token_source(self):
        return Source()
    def status(self):
        return []

@pytest.fixture(scope="session")
def stack():
    yield FakeDeployment()
"""


def test_clients_point_at_the_stack_endpoints(pytester: pytest.Pytester, local_server: str) -> None:
    pytester.makeconftest(FAKE_STACK.replace('"URL"', repr(local_server)))
    pytester.makepyfile(
        """
        from pytest_observastack import AgentClient, MetricsClient

        def test_user_client(user_client):
            assert user_client.get("/api/whoami").json() == {"path": "/api/whoami"}

        def test_secure_client_sends_a_bearer_token(secure_client):
            assert secure_client.get("/agent/status").json() == {"auth": "Bearer h.p.None"}

        def test_agent_uses_both_clients(agent, secure_client):
            assert isinstance(agent, AgentClient)

        def test_metrics(metrics):
            assert isinstance(metrics, MetricsClient)
            assert metrics.value("hits") == 3.0
        """
    )
    pytester.runpytest().assert_outcomes(passed=4)


def test_token_fixture_mints_for_the_stack_audience(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_STACK)
    pytester.makepyfile(
        """
        def test_token(token):
            assert token.audience == "aud-x"
            assert token.valid() == "h.p.aud-x"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_load_and_chaos_are_skipped_where_there_is_no_local_stack(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FAKE_STACK)
    pytester.makepyfile(
        test_skip="""
        def test_load(load):
            pass

        def test_chaos(chaos):
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1] test_skip.py:*: load: runs in the local loadgen container; not "
            "available with --gcp",
            "SKIPPED [[]1] test_skip.py:*: chaos: disrupting services needs the local Docker "
            "engine; not available with --gcp",
        ]
    )


ENGINE_DOWN = (
    "the Docker engine is not running: start it, e.g. `dockerd >/var/log/dockerd.log 2>&1 &` "
    "(no systemd here), then retry"
)


def test_engine_not_running_is_one_clear_error_at_session_start(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin, "engine_problem", lambda: ENGINE_DOWN)
    pytester.makepyfile(
        """
        def test_one(stack):
            pass

        def test_two(user_client):
            pass

        def test_no_stack():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == (
        f"ERROR: ObservaStack: 2 selected test(s) need the session stack, but {ENGINE_DOWN}"
    )
    assert result.stderr.lines[1] == (
        "To run only the tests that need no engine, deselect the others, e.g. -m 'not engine'"
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_deselected_engine_tests_need_no_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin, "engine_problem", lambda: ENGINE_DOWN)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.engine
        def test_on_stack(stack):
            pass

        def test_plain():
            pass
        """
    )
    pytester.runpytest("-m", "not engine").assert_outcomes(passed=1, deselected=1)


@contextlib.contextmanager
def _failing_deployment(*args: Any, **kwargs: Any) -> Iterator[Any]:
    raise EngineError("the Docker engine does not answer within 20 s: is dockerd stuck?")
    yield


def test_a_failing_stack_gives_a_clean_error_per_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin, "engine_problem", lambda: None)
    monkeypatch.setattr(plugin, "open_deployment", _failing_deployment)
    pytester.makepyfile(
        """
        def test_one(stack):
            pass

        def test_two(stack):
            pass
        """
    )
    result = pytester.runpytest("--observastack-report", "r.json")
    result.assert_outcomes(errors=2)
    tests = json.loads((pytester.path / "r.json").read_text())["tests"]
    assert {(t["outcome"], t["message"]) for t in tests} == {
        ("error", "ObservaStack could not stand up the session stack: EngineError: the Docker "
                  "engine does not answer within 20 s: is dockerd stuck?")
    }  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "*= ERRORS =*",
            "*_ ERROR at setup of test_one _*",
            "ObservaStack could not stand up the session stack: EngineError: the Docker engine "
            "does not answer within 20 s: is dockerd stuck?",
            "*_ ERROR at setup of test_two _*",
        ]
    )
    result.stdout.no_fnmatch_line("*_target.py*")
    result.stdout.no_fnmatch_line("*During handling*")


def test_observastack_options_can_be_overridden_in_conftest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    @contextlib.contextmanager
    def recording(settings: Any, options: Any, **kwargs: Any) -> Iterator[Any]:
        seen.append(options)
        yield types.SimpleNamespace(project=options.project)

    monkeypatch.setattr(plugin, "engine_problem", lambda: None)
    monkeypatch.setattr(plugin, "open_deployment", recording)
    pytester.makeconftest(
        """
        import pytest
        from pytest_observastack import StackOptions

        @pytest.fixture(scope="session")
        def observastack_options():
            return StackOptions(project="obsk-plug-conftest", vault="standin")
        """
    )
    pytester.makepyfile("def test_it(stack):\n    assert stack.project == 'obsk-plug-conftest'\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert seen[0].vault == "standin"


GCP_TESTS = """
import pytest

def test_stack_is_the_deployment(stack):
    assert stack.project == "gcp-sim"

@pytest.mark.local_only
def test_compose_things(stack):
    pass

@pytest.mark.gcp_only
@pytest.mark.lab("gcp", points=2)
def test_two_hosts(stack):
    pass

@pytest.mark.engine
def test_engine_marked_still_runs(stack):
    pass
"""


class GcpDeployment:
    project = "gcp-sim"

    @classmethod
    def from_settings(cls, path: str | None, environ: Any, *, say: Any) -> GcpDeployment:
        return cls()

    def __enter__(self) -> GcpDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_gcp_target(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("pytest_observastack._gcp")
    module.GcpDeployment = GcpDeployment  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pytest_observastack._gcp", module)
    pytester.makepyfile(test_gcp=GCP_TESTS)
    result = pytester.runpytest("--gcp", "-rs", "--observastack-report", "r.json")
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1] test_gcp.py:6: local_only: needs the local compose stack; this run "
         "targets the GCP deployment (--gcp)"]
    )  # fmt: skip
    assert json.loads((pytester.path / "r.json").read_text())["target"] == "gcp"


def test_gcp_without_its_module_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pytest_observastack._gcp", None)
    result = pytester.runpytest("--gcp")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --gcp needs pytest_observastack._gcp (the two-host deployment client), which "
         "this installation does not have; update the checkout, or run without --gcp"]
    )  # fmt: skip
