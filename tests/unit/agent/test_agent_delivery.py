"""Signals delivered to a real Gunicorn master change its worker set as Gunicorn documents."""

from __future__ import annotations

import errno
import os
import signal
from typing import Any

import pytest

from agent.discovery import ProcessId, identify
from agent.errors import SignalRefused
from agent.signals import open_target


def send(gunicorn: Any, sig: signal.Signals) -> None:
    with open_target(gunicorn.master, gunicorn.discovery) as target:
        target.send(sig)


def test_ttin_adds_and_ttou_removes_the_oldest_worker(gunicorn: Any) -> None:
    before = gunicorn.workers()
    send(gunicorn, signal.SIGTTIN)
    three = gunicorn.wait_workers(lambda w: len(w) == 3, "a third worker")
    assert set(before) < set(three)
    send(gunicorn, signal.SIGTTOU)
    two = gunicorn.wait_workers(lambda w: len(w) == 2, "back to two workers")
    assert before[0] not in two, "TTOU removes the oldest worker"


def test_ttou_at_one_worker_leaves_one(tmp_path: Any, gunicorn: Any) -> None:
    send(gunicorn, signal.SIGTTOU)
    (last,) = gunicorn.wait_workers(lambda w: len(w) == 1, "one worker")
    send(gunicorn, signal.SIGTTOU)
    gunicorn.wait_workers(
        lambda w: gunicorn.log.read_text().lower().count("handling signal: ttou") == 2,
        "gunicorn to log the second TTOU",
    )
    assert gunicorn.workers() == (last,)


def test_hup_replaces_every_worker_and_keeps_the_master(gunicorn: Any) -> None:
    master = gunicorn.master
    before = set(gunicorn.workers())
    send(gunicorn, signal.SIGHUP)
    after = gunicorn.wait_workers(
        lambda w: len(w) == 2 and not before & set(w), "every worker replaced"
    )
    assert gunicorn.master == master
    assert len(after) == 2


def test_without_pidfd_delivery_still_works(gunicorn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(errno.ENOSYS, "pidfd_open is not available")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    send(gunicorn, signal.SIGTTIN)
    gunicorn.wait_workers(lambda w: len(w) == 3, "a third worker")


@pytest.mark.parametrize(
    ("pid_of", "message"),
    [
        (lambda g: 1, "refusing to signal PID 1"),
        (lambda g: os.getpid(), "refusing to signal the agent itself"),
        (lambda g: 0, "refusing to signal pid 0"),
        (lambda g: -1, "refusing to signal pid -1"),
    ],
)
def test_forbidden_targets_are_refused(shared_gunicorn: Any, pid_of: Any, message: str) -> None:
    pid = pid_of(shared_gunicorn)
    ident = identify(pid) if pid > 0 else None
    target = ident or ProcessId(pid, 0.0)
    with pytest.raises(SignalRefused, match=message):
        open_target(target, shared_gunicorn.discovery)


def test_a_worker_or_a_recycled_pid_is_refused(shared_gunicorn: Any) -> None:
    discovery = shared_gunicorn.discovery
    master = shared_gunicorn.master
    worker = shared_gunicorn.workers()[0]
    with pytest.raises(SignalRefused, match="no longer the master the agent bound to"):
        open_target(worker, discovery)
    with pytest.raises(SignalRefused, match="no longer the master"):
        open_target(ProcessId(master.pid, master.create_time + 1), discovery)


def test_a_master_that_died_after_the_check_is_reported_gone(gunicorn: Any) -> None:
    target = open_target(gunicorn.master, gunicorn.discovery)
    with target:
        os.kill(gunicorn.proc.pid, signal.SIGKILL)
        gunicorn.proc.wait(timeout=10)
        with pytest.raises(SignalRefused, match="is gone; nothing was sent"):
            target.send(signal.SIGHUP)
