"""``python -m agent`` start-up: clear failures for bad settings and a missing master."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agent.__main__ import EXIT_BAD_CONFIG, EXIT_NO_MASTER, main


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Unused:
    def check_authorization(self, authorization: list[str], /, *, path: str) -> Any:
        raise AssertionError("serve=False: no request is made")


def never_called(env: Any) -> Unused:
    return Unused()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_bad_settings_exit_2_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code = main({"OBSERVASTACK_AGENT_PORT": "http"}, make_validator=never_called)
    assert code == EXIT_BAD_CONFIG
    assert "bad configuration: OBSERVASTACK_AGENT_PORT='http'" in capsys.readouterr().err


def test_unconfigured_token_validation_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    def no_validator(env: Any) -> Any:
        raise ValueError("OBSERVASTACK_JWT_ISSUER is not set")

    assert main({}, make_validator=no_validator, serve=False) == EXIT_BAD_CONFIG
    (line,) = json_lines(capsys.readouterr().out)
    assert line["event"] == "bad_config"
    assert "OBSERVASTACK_JWT_ISSUER is not set" in line["msg"]


def test_no_master_in_time_exits_4_with_what_was_seen(capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        "OBSERVASTACK_AGENT_MASTER_TITLE": "^no such master$",
        "OBSERVASTACK_AGENT_DISCOVERY_TIMEOUT_S": "0.2",
    }
    assert main(env, make_validator=never_called, serve=False) == EXIT_NO_MASTER
    lines = json_lines(capsys.readouterr().out)
    assert [line["event"] for line in lines] == ["discovering", "no_master"]
    assert "no Gunicorn master appeared within 0.2 s" in lines[1]["msg"]
    assert lines[1]["level"] == "ERROR"


def test_binds_to_the_master(shared_gunicorn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"OBSERVASTACK_AGENT_MASTER_TITLE": shared_gunicorn.master_title}
    assert main(env, make_validator=never_called, serve=False) == 0
    bound = json_lines(capsys.readouterr().out)[-1]
    assert bound["event"] == "bound"
    assert bound["master_pid"] == shared_gunicorn.proc.pid
    assert bound["title"] == f"gunicorn: master [{shared_gunicorn.name}]"
