"""The command line without an engine: help, verbs, and doctor's advice."""

from __future__ import annotations

import pytest

from pytest_observastack import _cli


def test_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for verb in ("build", "up", "down", "status", "endpoints", "logs", "converge", "doctor"):
        assert verb in out


def test_unknown_verb_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["explode"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'explode'" in capsys.readouterr().err


def test_doctor_says_how_to_fix_a_missing_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = "the Docker engine is not running: start it"
    monkeypatch.setattr(_cli, "engine_problem", lambda: problem)
    assert _cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] engine and compose v2: the Docker engine is not running: start it" in out
    assert "mmdebstrap (offline builds)" in out


def test_errors_become_a_message_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_observastack._errors import EngineError

    def boom(args: object) -> int:
        raise EngineError("the Docker engine is not running: start it with dockerd")

    monkeypatch.setattr(_cli, "cmd_status", boom)
    assert _cli.main(["status"]) == 2
    assert "error: the Docker engine is not running" in capsys.readouterr().err


def test_assignments_nest_dotted_keys_and_parse_json_values() -> None:
    from pytest_observastack._cli_control import parse_assignments

    patch = parse_assignments(["rate_limit.rps=5", "rate_limit.burst=10", "name=plain", "on=true"])
    assert patch == {"rate_limit": {"rps": 5, "burst": 10}, "name": "plain", "on": True}


def test_assignments_refuse_malformed_pairs() -> None:
    import argparse

    from pytest_observastack._cli_control import parse_assignments

    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        parse_assignments(["rate_limit.rps"])
    with pytest.raises(argparse.ArgumentTypeError, match="mixes a value and nested keys"):
        parse_assignments(["a=1", "a.b=2"])
