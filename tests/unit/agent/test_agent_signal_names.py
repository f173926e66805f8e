"""Which signal names the agent accepts, and what it says about the rest."""

from __future__ import annotations

import signal

import pytest

from agent.errors import InvalidSignal
from agent.signals import parse_signal, parse_signal_request


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HUP", signal.SIGHUP),
        ("hup", signal.SIGHUP),
        ("SIGHUP", signal.SIGHUP),
        ("sighup", signal.SIGHUP),
        ("SigHup", signal.SIGHUP),
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("KILL", signal.SIGKILL),
        ("sigkill", signal.SIGKILL),
        ("USR1", signal.SIGUSR1),
        ("SIGUSR1", signal.SIGUSR1),
        ("TTIN", signal.SIGTTIN),
        ("ttin", signal.SIGTTIN),
        ("TTOU", signal.SIGTTOU),
        ("SIGTTOU", signal.SIGTTOU),
    ],
)
def test_accepted_names(raw: str, expected: signal.Signals) -> None:
    assert parse_signal(raw) is expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1", "signal numbers are not accepted"),
        ("9", "signal numbers are not accepted"),
        ("-15", "signal numbers are not accepted"),
        (1, "must be a string"),
        (9.0, "must be a string"),
        (True, "must be a string"),
        (None, "must be a string"),
        (["HUP"], "must be a string"),
        ({"name": "HUP"}, "must be a string"),
        ("STOP", "SIGSTOP is not delivered: it would freeze the master"),
        ("SIGSTOP", "SIGSTOP is not delivered"),
        ("sigcont", "SIGCONT is not delivered"),
        ("INT", "SIGINT is not delivered: it is Gunicorn's quick shutdown"),
        ("QUIT", "SIGQUIT is not delivered"),
        ("USR2", "SIGUSR2 is not delivered: it re-executes Gunicorn"),
        ("WINCH", "SIGWINCH is not delivered"),
        ("SEGV", "SIGSEGV is not delivered: the agent only delivers Gunicorn's control signals"),
        ("BOGUS", "unknown signal name 'BOGUS'"),
        ("", "unknown signal name ''"),
        ("SIG", "unknown signal name 'SIG'"),
        ("SIGSIGHUP", "unknown signal name"),
        (" HUP", "unknown signal name"),
        ("HUP ", "unknown signal name"),
        ("SIG_HUP", "unknown signal name"),
        ("HUP;KILL", "unknown signal name"),
        ("x" * 500, "..."),
    ],
)
def test_rejected_forms_say_why(raw: object, reason: str) -> None:
    with pytest.raises(InvalidSignal) as info:
        parse_signal(raw)
    message = str(info.value)
    assert reason in message
    assert "accepted: HUP, TERM, KILL, USR1, TTIN, TTOU" in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body must be JSON"),
        (b"HUP", "the body must be JSON"),
        (b"\xff\xfe", "the body must be JSON"),
        (b"[" * 20000, "the body must be JSON"),
        (b'"HUP"', "must be a JSON object"),
        (b'["HUP"]', "must be a JSON object"),
        (b"{}", 'missing field "signal"'),
        (b'{"sig": "HUP"}', 'missing field "signal"'),
        (b'{"signal": "HUP", "pid": 1}', "unexpected field(s) ['pid']"),
        (b'{"signal": 9}', "must be a string"),
        (b'{"signal": "STOP"}', "SIGSTOP is not delivered"),
    ],
)
def test_bad_request_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidSignal, match=None) as info:
        parse_signal_request(body)
    assert reason in str(info.value)


def test_good_request_body_keeps_what_was_asked() -> None:
    assert parse_signal_request(b'{"signal": "sighup"}') == ("sighup", signal.SIGHUP)
