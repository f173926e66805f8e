"""The ``observastack`` verbs an instructor types, against the session stack."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from pytest_observastack import Stack


def observastack(stack: Stack, *argv: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_observastack._cli", *argv, "--project", stack.project],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_status_and_endpoints(stack: Stack) -> None:
    states = json.loads(observastack(stack, "status", "--json"))
    assert all(s["ready"] for s in states)
    assert json.loads(observastack(stack, "endpoints", "--json")) == stack.endpoints()


def test_config_fault_and_flag_verbs_round_trip(stack: Stack) -> None:
    before = json.loads(observastack(stack, "config", "get"))
    after = json.loads(observastack(stack, "config", "set", "request_timeout_ms=12345"))
    assert after["request_timeout_ms"] == 12345
    assert after["version"] > before["version"]
    restored = observastack(
        stack, "config", "set", f"request_timeout_ms={before['request_timeout_ms']}"
    )
    assert json.loads(restored)["request_timeout_ms"] == before["request_timeout_ms"]

    fault = json.loads(observastack(stack, "fault", "add", "latency", "--duration", "30",
                                    "--param", "fixed_ms=5"))  # fmt: skip
    listed = json.loads(observastack(stack, "fault", "list"))
    assert fault["id"] in [f["id"] for f in listed]
    cleared = json.loads(observastack(stack, "fault", "clear", fault["id"]))
    assert cleared == {"cleared": [fault["id"]]}

    flag = json.loads(observastack(stack, "flag", "set", "items_cache", "false"))
    assert flag["value"] is False
    assert json.loads(observastack(stack, "flag", "list"))["items_cache"]["value"] is False


def test_agent_verbs(stack: Stack) -> None:
    status = json.loads(observastack(stack, "agent", "status", "--json"))
    assert len(status["workers"]) >= 1
    token = observastack(stack, "token").strip()
    assert token.count(".") == 2
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_observastack._cli", "signal", "SIGSTOP",
         "--project", stack.project],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "refused 'SIGSTOP' (HTTP 400)" in proc.stderr
