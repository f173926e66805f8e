"""The Control Agent's worker-count reconciliation (``agent.reconcile``) with a fake master."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.audit import SignalHistory, SignalRecord
from agent.discovery import ProcessId
from agent.errors import ConfigError, MasterNotFound, SignalRefused
from agent.reconcile import (
    DesiredUnavailable,
    DesiredWorkers,
    ProcRootFile,
    Reconciler,
    ReconcileSettings,
    for_core,
    process_clock,
)

SETTINGS = ReconcileSettings(settle_s=1.0, move_timeout_s=10.0)


@dataclass
class FakeBackend:
    """What the reconciler sees: a desired count, a worker list, a clock; records signals."""

    desired: int | None = 2
    workers: list[ProcessId] = field(default_factory=list)
    now: float = 1000.0
    sent: list[str] = field(default_factory=list)
    refuse: bool = False
    gone: bool = False
    last_hup: float | None = None
    last_manual: float | None = None
    next_pid: int = 100

    def __post_init__(self) -> None:
        for _ in range(2):
            self.spawn()

    def spawn(self) -> None:
        self.workers.append(ProcessId(self.next_pid, self.now))
        self.next_pid += 1

    def read(self) -> DesiredWorkers:
        if self.desired is None:
            raise DesiredUnavailable("no file yet")
        return DesiredWorkers(self.desired, 7)

    def describe(self) -> str:
        return "fake"

    def list_workers(self) -> list[ProcessId]:
        if self.gone:
            raise MasterNotFound("master 1 is gone")
        return list(self.workers)

    def send(self, name: str) -> None:
        if self.refuse:
            raise SignalRefused("master is gone; nothing was sent")
        self.sent.append(name)

    def reconciler(self) -> Reconciler:
        return Reconciler(
            self,
            self.list_workers,
            self.send,
            last_hup=lambda: self.last_hup,
            last_manual=lambda: self.last_manual,
            settings=SETTINGS,
            clock=lambda: self.now,
            wall=lambda: self.now,
            to_process_clock=lambda wall: wall,
        )

    def settle(self, reconciler: Reconciler) -> dict[str, Any]:
        """Let the set of workers stay unchanged for the settle time, then step."""
        reconciler.step()
        self.now += SETTINGS.settle_s
        return reconciler.step()


def test_reports_converged_and_sends_nothing_when_counts_match() -> None:
    backend = FakeBackend(desired=2)
    reconciler = backend.reconciler()
    status = backend.settle(reconciler)
    assert (status["state"], status["converged"], status["desired"], status["live"]) == (
        "converged", True, 2, 2,
    )  # fmt: skip
    assert status["config_version"] == 7
    assert backend.sent == []
    assert reconciler.snapshot() == status


def test_scales_up_one_step_at_a_time_waiting_for_the_count_to_move() -> None:
    backend = FakeBackend(desired=4)
    reconciler = backend.reconciler()
    assert backend.settle(reconciler)["state"] == "scaling-up"
    assert backend.sent == ["TTIN"]
    backend.now += 0.3
    status = reconciler.step()
    assert (status["state"], status["pending"]["signal"]) == ("waiting", "TTIN")
    assert backend.sent == ["TTIN"]  # no second step before the first one took effect
    backend.spawn()
    assert reconciler.step()["state"] == "settling"
    assert backend.settle(reconciler)["state"] == "scaling-up"
    backend.spawn()
    status = backend.settle(reconciler)
    assert (status["state"], status["live"]) == ("converged", 4)
    assert backend.sent == ["TTIN", "TTIN"]
    assert status["actions"] == 2


def test_scales_down_with_ttou() -> None:
    backend = FakeBackend(desired=1)
    reconciler = backend.reconciler()
    backend.settle(reconciler)
    assert backend.sent == ["TTOU"]
    backend.workers.pop(0)  # Gunicorn stops the oldest worker
    assert backend.settle(reconciler)["state"] == "converged"


def test_after_a_hup_it_waits_for_the_old_workers_then_converges_again() -> None:
    backend = FakeBackend(desired=3)
    backend.spawn()
    reconciler = backend.reconciler()
    assert backend.settle(reconciler)["state"] == "converged"
    backend.now += 60
    backend.last_hup = backend.now  # HUP: Gunicorn starts -w (2) new workers, stops the old 3
    backend.now += 0.03
    backend.spawn()
    backend.spawn()
    status = reconciler.step()
    assert (status["state"], status["live"], status["outgoing"]) == ("reloading", 2, 3)
    backend.now += 5  # old workers stay a while (a long request)
    assert reconciler.step()["state"] == "reloading"
    del backend.workers[:3]
    assert reconciler.step()["state"] == "settling"
    assert backend.settle(reconciler)["state"] == "scaling-up"
    assert backend.sent == ["TTIN"]


def test_manual_scaling_is_held_for_a_while_then_reverted() -> None:
    backend = FakeBackend(desired=2)
    backend.spawn()  # someone sent TTIN through the agent's API
    backend.last_manual = backend.now
    reconciler = backend.reconciler()
    status = backend.settle(reconciler)
    assert status["state"] == "held"
    assert "converging to 2 in" in status["detail"]
    backend.now += SETTINGS.manual_hold_s
    assert reconciler.step()["state"] == "scaling-down"
    assert backend.sent == ["TTOU"]


def test_retries_when_the_count_does_not_move() -> None:
    backend = FakeBackend(desired=3)
    reconciler = backend.reconciler()
    backend.settle(reconciler)
    backend.now += SETTINGS.move_timeout_s + 0.1
    reconciler.step()
    assert backend.sent == ["TTIN", "TTIN"]


def test_an_unreadable_desired_count_means_no_action() -> None:
    backend = FakeBackend(desired=None)
    reconciler = backend.reconciler()
    status = backend.settle(reconciler)
    assert (status["state"], status["converged"], status["desired"]) == ("unknown", False, None)
    assert status["detail"] == "no file yet"
    assert backend.sent == []


def test_refused_signals_and_a_gone_master_are_reported() -> None:
    backend = FakeBackend(desired=3, refuse=True)
    reconciler = backend.reconciler()
    status = backend.settle(reconciler)
    assert (status["state"], status["pending"]) == ("error", None)
    assert "TTIN was not sent" in status["detail"]
    backend.gone = True
    assert reconciler.step()["state"] == "master-gone"


def test_a_failing_step_does_not_end_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def broken() -> list[ProcessId]:
        calls.append(1)
        raise RuntimeError("boom")

    backend = FakeBackend()
    reconciler = Reconciler(backend, broken, backend.send)
    caplog.set_level(logging.ERROR, logger="agent.reconcile")
    reconciler.start(0.01)
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    reconciler.stop()
    assert len(calls) >= 3
    assert "reconcile step failed" in caplog.text


# -- the file, read through /proc/<pid>/root -----------------------------------------------------


def test_the_desired_file_is_read_through_the_masters_root(tmp_path: Path) -> None:
    path = tmp_path / "desired-workers.json"
    source = ProcRootFile(os.getpid, str(path), max_workers=16)
    assert source.describe() == f"/proc/{os.getpid()}/root{path}"
    with pytest.raises(DesiredUnavailable, match="does not exist"):
        source.read()
    path.write_text(json.dumps({"desired_workers": 3, "config_version": 9}))
    assert source.read() == DesiredWorkers(3, 9)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{", "not the expected JSON"),
        (b'{"desired_workers": 3}', "not the expected JSON"),
        (b'{"desired_workers": 0, "config_version": 1}', "1..16"),
        (b'{"desired_workers": 17, "config_version": 1}', "1..16"),
        (b'{"desired_workers": true, "config_version": 1}', "1..16"),
        (b'{"desired_workers": "3", "config_version": 1}', "1..16"),
        (b"x" * 5000, "larger than"),
    ],
)
def test_a_bad_desired_file_is_ignored_with_a_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "desired-workers.json"
    path.write_bytes(content)
    with pytest.raises(DesiredUnavailable, match=reason):
        ProcRootFile(os.getpid, str(path), max_workers=16).read()


def test_settings_from_the_environment() -> None:
    assert ReconcileSettings.from_env({}) == ReconcileSettings()
    custom = ReconcileSettings.from_env(
        {"OBSERVASTACK_AGENT_RECONCILE_SETTLE_S": "0.5", "OBSERVASTACK_AGENT_MAX_WORKERS": "8"}
    )
    assert (custom.settle_s, custom.max_workers) == (0.5, 8)
    assert (
        ReconcileSettings.from_env({"OBSERVASTACK_AGENT_DESIRED_WORKERS_FILE": ""}).desired_file
        == ""
    )
    with pytest.raises(ConfigError, match="absolute path"):
        ReconcileSettings.from_env({"OBSERVASTACK_AGENT_DESIRED_WORKERS_FILE": "relative.json"})
    with pytest.raises(ConfigError, match="between"):
        ReconcileSettings.from_env({"OBSERVASTACK_AGENT_RECONCILE_SETTLE_S": "-1"})
    with pytest.raises(ConfigError, match="not a number"):
        ReconcileSettings.from_env({"OBSERVASTACK_AGENT_MAX_WORKERS": "many"})


def test_process_clock_maps_wall_time_onto_psutil_start_times() -> None:
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    after = time.time()
    try:
        started = psutil.Process(child.pid).create_time()
    finally:
        child.wait(5)
    assert process_clock(before) - 0.02 <= started <= process_clock(after) + 0.02


# -- wiring to the agent's core ----------------------------------------------------------------


@dataclass
class FakeTarget:
    ident: ProcessId
    delivered: list[int]

    def send(self, sig: int) -> None:
        self.delivered.append(sig)

    def __enter__(self) -> FakeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@dataclass
class FakeCore:
    master: ProcessId
    discovery: Any
    history: SignalHistory = field(default_factory=lambda: SignalHistory(10))
    delivered: list[int] = field(default_factory=list)

    def open_target(self) -> FakeTarget:
        return FakeTarget(self.master, self.delivered)


def test_for_core_signals_the_bound_master_and_records_it(tmp_path: Path) -> None:
    import signal as signals

    path = tmp_path / "desired.json"
    path.write_text(json.dumps({"desired_workers": 3, "config_version": 2}))

    class Discovery:
        def workers(self, master: ProcessId) -> tuple[ProcessId, ...]:
            return (ProcessId(10, 1.0), ProcessId(11, 1.0))

    core = FakeCore(ProcessId(os.getpid(), 1.0), Discovery())
    core.history.add(
        SignalRecord(
            at="2026-01-01T00:00:00.000+00:00",
            caller="someone",
            requested="HUP",
            signal="SIGHUP",
            target_pid=1,
            target_create_time=1.0,
            result="delivered",
            status=202,
            detail="sent",
        )
    )
    reconciler = for_core(core, ReconcileSettings(desired_file=str(path), settle_s=0))
    assert reconciler.last_hup() == pytest.approx(1767225600.0)
    assert reconciler.last_manual() is None
    status = reconciler.step()
    assert status["state"] == "scaling-up"
    assert core.delivered == [signals.SIGTTIN]
    record = core.history.snapshot()[-1]
    assert (record.caller, record.signal, record.result) == (
        "agent:reconciler", "SIGTTIN", "delivered",
    )  # fmt: skip
    assert reconciler.last_manual() is None  # its own signals are not manual scaling
    core.history.add(
        SignalRecord(
            at="2026-01-01T00:00:05.000+00:00",
            caller="someone",
            requested="TTOU",
            signal="SIGTTOU",
            target_pid=1,
            target_create_time=1.0,
            result="delivered",
            status=202,
            detail="sent",
        )
    )
    assert reconciler.last_manual() == pytest.approx(1767225605.0)
