"""The agent's HTTP API, served in-process (ASGI) with a fake token validator."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from agent.audit import AUDIT_LOGGER, JsonFormatter
from agent.discovery import Discovery, ProcessId, identify
from agent.runtime import AgentCore
from agent.signals import Target

PROBLEM = "application/problem+json"


def core_for(gunicorn: Any) -> AgentCore:
    master, title = gunicorn.discovery.find_master()
    return AgentCore(gunicorn.discovery, master, title, history_size=5)


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [getattr(r, "audit") for r in caplog.records if r.name == AUDIT_LOGGER]  # noqa: B009


def assert_problem(response: Any, status: int, kind: str, detail: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:observastack:agent:{kind}"
    assert body["status"] == status
    assert body["title"]
    assert detail in body["detail"]
    return body


class NoSignalCore(AgentCore):
    """Fails the test if the API ever tries to reach a target."""

    def open_target(self) -> Target:
        raise AssertionError("a signal was about to be sent")


@pytest.fixture
def dead_process() -> ProcessId:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ident = identify(proc.pid)
    proc.wait(timeout=10)
    assert ident is not None
    return ident


def test_healthz_needs_no_token_and_names_the_master(
    shared_gunicorn: Any, serve: Any, validator: Any
) -> None:
    core = core_for(shared_gunicorn)
    response = serve(core).request("GET", "/agent/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "master_pid": shared_gunicorn.proc.pid,
        "generation": core.generation,
    }
    assert validator.calls == []


def test_status_reports_master_workers_generation_and_uptimes(
    shared_gunicorn: Any, serve: Any, auth_headers: Any, validator: Any
) -> None:
    core = core_for(shared_gunicorn)
    response = serve(core).request("GET", "/agent/status", headers=auth_headers)
    assert response.status_code == 200
    body = response.json()
    workers = shared_gunicorn.workers()
    assert body["master"] == {
        "pid": core.master.pid,
        "create_time": core.master.create_time,
        "title": f"gunicorn: master [{shared_gunicorn.name}]",
    }
    assert body["workers"] == [w.to_json() for w in workers]
    assert body["worker_pids"] == [w.pid for w in workers]
    assert body["worker_count"] == 2
    assert body["generation"] == core.generation == Discovery().namespace_root().create_time
    assert body["namespace_root"]["pid"] == 1
    assert body["agent_pid"] == os.getpid()
    assert 0 <= body["agent_uptime_s"] < 60
    assert body["backend_uptime_s"] > 0
    assert body["signals"] == []
    assert validator.calls == [(["Bearer test-token"], "/agent/status")]


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "missing bearer token"),
        ({"Authorization": "Bearer nope"}, 401, "invalid token"),
        ({"Authorization": "Bearer forbidden-token"}, 403, "subject not allowed"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/agent/status"), ("POST", "/agent/signals"), ("GET", "/agent/unknown")],
)
def test_the_validator_decides_with_its_challenge(
    shared_gunicorn: Any,
    serve: Any,
    headers: dict[str, str],
    status: int,
    reason: str,
    method: str,
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = NoSignalCore(shared_gunicorn.discovery, shared_gunicorn.master, "t")
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        response = serve(core).request(method, path, headers=headers, json={"signal": "HUP"})
    kind = "forbidden" if status == 403 else "unauthorized"
    assert_problem(response, status, kind, reason)
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    (line,) = audit_lines(caplog)
    assert line["status"] == status
    assert line["result"] == "unauthorized"
    assert line["path"] == path
    assert core.history.snapshot() == []


def test_a_failing_validator_fails_closed(shared_gunicorn: Any, serve: Any, validator: Any) -> None:
    def broken(values: list[str], /, *, path: str) -> Any:
        raise RuntimeError("jwks down")

    validator.check_authorization = broken
    core = NoSignalCore(shared_gunicorn.discovery, shared_gunicorn.master, "t")
    response = serve(core).request("POST", "/agent/signals", json={"signal": "HUP"})
    assert_problem(response, 401, "unauthorized", "could not be validated")


def test_signal_is_delivered_logged_and_remembered(
    shared_gunicorn: Any, serve: Any, auth_headers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    core = core_for(shared_gunicorn)
    client = serve(core)
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        response = client.request(
            "POST", "/agent/signals", headers=auth_headers, json={"signal": "sigusr1"}
        )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["signal"] == "SIGUSR1"
    assert body["delivered_to"] == core.master.to_json()
    assert body["delivery"] == "sent"
    assert body["generation"] == core.generation

    (line,) = audit_lines(caplog)
    assert line == {
        "caller": "test-caller",
        "method": "POST",
        "path": "/agent/signals",
        "signal": "SIGUSR1",
        "target_pid": core.master.pid,
        "result": "delivered",
        "reason": "sent",
        "status": 202,
    }
    record = next(r for r in caplog.records if r.name == AUDIT_LOGGER)
    printed = JsonFormatter().format(record)
    assert "\n" not in printed
    assert json.loads(printed) | line == json.loads(printed)

    (remembered,) = core.history.snapshot()
    assert remembered.caller == "test-caller"
    assert remembered.requested == "sigusr1"
    assert (remembered.signal, remembered.result, remembered.status) == (
        "SIGUSR1",
        "delivered",
        202,
    )
    assert (remembered.target_pid, remembered.target_create_time) == (
        core.master.pid,
        core.master.create_time,
    )
    status = client.request("GET", "/agent/status", headers=auth_headers).json()
    assert status["signals"] == [remembered.to_json()]
    assert shared_gunicorn.workers() == tuple(ProcessId(**w) for w in status["workers"])


def test_ttin_through_the_api_adds_a_worker(gunicorn: Any, serve: Any, auth_headers: Any) -> None:
    response = serve(core_for(gunicorn)).request(
        "POST", "/agent/signals", headers=auth_headers, json={"signal": "TTIN"}
    )
    assert response.status_code == 202
    gunicorn.wait_workers(lambda w: len(w) == 3, "a third worker after TTIN through the API")


def test_kill_answers_before_the_master_dies(
    gunicorn: Any, serve: Any, auth_headers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    core = core_for(gunicorn)
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        response = serve(core).request(
            "POST", "/agent/signals", headers=auth_headers, json={"signal": "KILL"}
        )
    assert response.status_code == 202
    assert response.json()["delivery"] == "after_response"
    assert response.json()["delivered_to"] == core.master.to_json()
    assert gunicorn.proc.wait(timeout=10) == -signal.SIGKILL
    (line,) = audit_lines(caplog)
    assert (line["signal"], line["result"], line["status"]) == ("SIGKILL", "accepted", 202)
    (remembered,) = core.history.snapshot()
    assert (remembered.result, remembered.caller) == ("delivered", "test-caller")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "the body must be JSON"),
        (b"", "the body must be JSON"),
        (b"[]", "must be a JSON object"),
        (b"{}", 'missing field "signal"'),
        (b'{"signal": 1}', "must be a string"),
        (b'{"signal": "9"}', "signal numbers are not accepted"),
        (b'{"signal": "BOGUS"}', "unknown signal name"),
        (b'{"signal": "SIGSTOP"}', "SIGSTOP is not delivered"),
        (b'{"signal": "HUP", "target": 1}', "unexpected field(s) ['target']"),
    ],
)
def test_bad_input_is_400_and_sends_nothing(
    shared_gunicorn: Any,
    serve: Any,
    auth_headers: Any,
    body: bytes,
    detail: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = NoSignalCore(shared_gunicorn.discovery, shared_gunicorn.master, "t")
    headers = {**auth_headers, "Content-Type": "application/json"}
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        response = serve(core).request("POST", "/agent/signals", headers=headers, content=body)
    assert_problem(response, 400, "invalid-signal", detail)
    (line,) = audit_lines(caplog)
    assert (line["status"], line["result"], line["caller"]) == (400, "rejected", "test-caller")
    assert detail in line["reason"]
    (remembered,) = core.history.snapshot()
    assert (remembered.result, remembered.status, remembered.signal) == ("rejected", 400, None)


def test_no_master_is_503_everywhere(
    dead_process: ProcessId, serve: Any, auth_headers: Any
) -> None:
    core = AgentCore(Discovery(), dead_process, "gunicorn: master [gone]")
    client = serve(core)
    assert_problem(client.request("GET", "/agent/healthz"), 503, "master-gone", "is gone")
    assert_problem(
        client.request("GET", "/agent/status", headers=auth_headers), 503, "master-gone", "gone"
    )
    response = client.request(
        "POST", "/agent/signals", headers=auth_headers, json={"signal": "HUP"}
    )
    assert_problem(response, 503, "signal-refused", "nothing was sent")
    (remembered,) = core.history.snapshot()
    assert (remembered.result, remembered.status) == ("refused", 503)


def test_pid_1_is_never_signalled(serve: Any, auth_headers: Any) -> None:
    init = identify(1)
    assert init is not None
    core = AgentCore(Discovery(), init, "gunicorn: master [pretend]")
    response = serve(core).request(
        "POST", "/agent/signals", headers=auth_headers, json={"signal": "HUP"}
    )
    assert_problem(response, 503, "signal-refused", "refusing to signal PID 1")


def test_unknown_routes_and_methods_are_problems(
    shared_gunicorn: Any, serve: Any, auth_headers: Any
) -> None:
    client = serve(NoSignalCore(shared_gunicorn.discovery, shared_gunicorn.master, "t"))
    assert_problem(client.request("GET", "/agent/nope", headers=auth_headers), 404, "http-404", "")
    response = client.request("GET", "/agent/signals", headers=auth_headers)
    assert_problem(response, 405, "http-405", "")


def test_oversized_bodies_are_refused(shared_gunicorn: Any, serve: Any, auth_headers: Any) -> None:
    client = serve(NoSignalCore(shared_gunicorn.discovery, shared_gunicorn.master, "t"))
    body = b'{"signal": "HUP"' + b" " * 20000 + b"}"
    response = client.request("POST", "/agent/signals", headers=auth_headers, content=body)
    assert_problem(response, 413, "http-413", "at most 16384 are accepted")
