"""Chaos without an engine: the downtime probe, and each action's disrupt-restore-verify frame."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_observastack import _chaos
from pytest_observastack._agent import AgentStatus, ProcessRef
from pytest_observastack._chaos import Chaos
from pytest_observastack._compose import Compose
from pytest_observastack._downtime import ChaosEvent, DowntimeProbe, DowntimeWindow
from pytest_observastack._errors import ControlError, ServiceNotReady, SteadyStateNotRestored


# -- the probe ----------------------------------------------------------------------------------
class Script:
    """A probe that answers from a script (True: up) and a clock that ticks one second a call."""

    def __init__(self, *ups: bool) -> None:
        self.ups = list(ups)
        self.now = 100.0

    def clock(self) -> float:
        self.now += 1.0
        return self.now

    def __call__(self) -> None:
        if not self.ups.pop(0):
            raise ControlError("GET /agent/status answered 503")


def test_probe_records_each_span_of_failures() -> None:
    script = Script(True, False, False, True, False, True)
    probe = DowntimeProbe(script, clock=script.clock)
    for _ in range(6):
        probe.observe()
    assert probe.windows == [
        DowntimeWindow(102.0, 104.0, "ControlError: GET /agent/status answered 503"),
        DowntimeWindow(105.0, 106.0, "ControlError: GET /agent/status answered 503"),
    ]


def test_probe_closes_a_window_still_open_at_stop() -> None:
    script = Script(False, False)
    probe = DowntimeProbe(script, clock=script.clock)
    probe.observe()
    (window,) = probe.stop()
    assert window.start == 101.0
    assert window.last_error.endswith("(still down at the end)")


def test_probe_thread_stops_promptly() -> None:
    calls: list[int] = []
    probe = DowntimeProbe(lambda: calls.append(1), interval_s=0.01).start()
    assert probe.stop() == ()
    assert calls


def test_event_round_trips_through_a_dict() -> None:
    event = ChaosEvent("kill agent", 1.0, 5.0, (DowntimeWindow(2.0, 3.5, "x"),))
    assert ChaosEvent.from_dict(event.to_dict()) == event
    assert event.downtime_s == 1.5


# -- actions, with a fake stack, agent and docker -----------------------------------------------
def _status(generation: float, workers: int = 2) -> AgentStatus:
    return AgentStatus(ProcessRef(7, 1.0), "gunicorn: master", tuple(ProcessRef(8 + i, 2.0)
                       for i in range(workers)), generation, 1.0, 1.0, (), {})  # fmt: skip


@dataclass
class FakeCompose:
    calls: list[tuple[str, ...]] = field(default_factory=list)
    project: str = "obsk-plug-unit"
    files: tuple[str, ...] = ("compose.yaml",)
    env: dict[str, str] = field(default_factory=lambda: {"A": "1"})

    def run(self, *args: str, **_: Any) -> None:
        self.calls.append(args)


@dataclass
class FakeStack:
    project: str = "obsk-plug-unit"
    compose: FakeCompose = field(default_factory=FakeCompose)
    ready_error: Exception | None = None
    waits: int = 0
    bootstraps: int = 0

    def container(self, service: str) -> str:
        return f"id-{service}"

    def url(self, name: str) -> str:
        return {"vault": "http://127.0.0.1:32001"}[name]

    def wait_ready(self, timeout: float) -> None:
        self.waits += 1
        if self.ready_error is not None:
            raise self.ready_error

    def bootstrap_identity(self) -> None:
        self.bootstraps += 1


class FakeUser:
    def get(self, path: str) -> Any:
        assert path == "/api/whoami"
        return type("Response", (), {"status_code": 200})()


@dataclass
class FakeAgent:
    generation: float = 1.0
    rebound_from: list[float] = field(default_factory=list)
    user: FakeUser = field(default_factory=FakeUser)

    def status(self) -> AgentStatus:
        return _status(self.generation)

    def wait_rebound(self, previous: float, timeout: float = 30.0) -> AgentStatus:
        self.rebound_from.append(previous)
        self.generation = previous + 1
        return _status(self.generation)


@pytest.fixture
def docker_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def docker(*args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        out = ""
        if args[:2] == ("inspect", "--format") and "Running" in args[2]:
            out = "false"
        elif args[:2] == ("network", "inspect"):
            out = "cid-agent\ncid-vault\n"
        elif args[0] == "inspect" and "Aliases" in args[2]:
            cid = args[3]
            own_short_id = cid[:6]  # Docker's own alias: dropped, Docker adds it again
            out = f'["{cid.removeprefix("cid-")}", "obsk-plug-unit-{cid}-1", "{own_short_id}"]'
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(_chaos, "docker", docker)
    return calls


@pytest.fixture
def events() -> list[ChaosEvent]:
    return []


@pytest.fixture
def chaos(events: list[ChaosEvent]) -> Chaos:
    return Chaos(FakeStack(), FakeAgent(), probe=lambda: None, on_event=events.append)  # type: ignore[arg-type]


def test_restart_backend_waits_for_a_new_generation(
    chaos: Chaos, docker_calls: list[tuple[str, ...]], events: list[ChaosEvent]
) -> None:
    event = chaos.restart_backend()
    assert docker_calls == [("restart", "id-backend")]
    assert chaos.agent.rebound_from == [1.0]  # type: ignore[attr-defined]
    assert chaos.stack.waits == 1  # type: ignore[attr-defined]
    assert events == [event]
    assert event.what == "restart backend"
    assert event.downtime == ()


def test_kill_backend_waits_until_docker_sees_it_stopped(
    chaos: Chaos, docker_calls: list[tuple[str, ...]]
) -> None:
    chaos.kill_backend()
    assert docker_calls[0] == ("kill", "--signal", "KILL", "id-backend")
    assert docker_calls[1][:3] == ("inspect", "--format", "{{.State.Running}}")
    assert chaos.agent.rebound_from == [1.0]  # type: ignore[attr-defined]


def test_stop_start_backend_uses_compose(chaos: Chaos, docker_calls: list[Any]) -> None:
    chaos.stop_start_backend()
    assert chaos.stack.compose.calls == [("stop", "backend"), ("start", "backend")]  # type: ignore[attr-defined]


def test_kill_agent_keeps_the_generation(chaos: Chaos, docker_calls: list[Any]) -> None:
    chaos.kill_agent()
    assert docker_calls[0] == ("kill", "--signal", "KILL", "id-agent")
    assert chaos.agent.rebound_from == []  # type: ignore[attr-defined]


def test_restart_vault_keeps_its_port_and_bootstraps_again(
    chaos: Chaos, docker_calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    recreated: list[tuple[Any, ...]] = []

    def run(compose: Any, *args: str, **_: Any) -> None:
        recreated.append((compose.project, dict(compose.env), args))

    monkeypatch.setattr(Compose, "run", run)
    chaos.restart_vault()
    assert recreated == [
        ("obsk-plug-unit", {"A": "1", "OBSERVASTACK_VAULT_PORT": "32001"},
         ("up", "--detach", "--no-deps", "--no-build", "--force-recreate", "vault")),
    ]  # fmt: skip
    assert chaos.stack.bootstraps == 1  # type: ignore[attr-defined]


def test_paused_backend_unpauses_even_when_the_block_fails(
    chaos: Chaos, docker_calls: list[tuple[str, ...]], events: list[ChaosEvent]
) -> None:
    with pytest.raises(ZeroDivisionError), chaos.paused_backend():
        _ = 1 / 0
    assert [c[0] for c in docker_calls] == ["pause", "unpause"]
    assert [e.what for e in events] == ["pause backend"]


def test_control_network_cut_reconnects_with_aliases(
    chaos: Chaos, docker_calls: list[tuple[str, ...]]
) -> None:
    chaos.cut_control_network(0.0)
    net = "obsk-plug-unit_control"
    cuts = [c for c in docker_calls if c[:2] in (("network", "disconnect"), ("network", "connect"))]
    assert cuts == [
        ("network", "disconnect", net, "cid-agent"),
        ("network", "disconnect", net, "cid-vault"),
        ("network", "connect", "--alias", "agent", "--alias", "obsk-plug-unit-cid-agent-1",
         net, "cid-agent"),
        ("network", "connect", "--alias", "vault", "--alias", "obsk-plug-unit-cid-vault-1",
         net, "cid-vault"),
    ]  # fmt: skip
    assert chaos.events[-1].what == "cut the control network (2 containers)"


def test_failed_restoration_says_what_to_do(docker_calls: list[Any]) -> None:
    stack = FakeStack(ready_error=ServiceNotReady("backend: exited/- exit=137"))
    chaos = Chaos(stack, FakeAgent(), probe=lambda: None, restore_timeout_s=5)  # type: ignore[arg-type]
    with pytest.raises(SteadyStateNotRestored) as caught:
        chaos.restart_backend()
    assert str(caught.value) == (
        "chaos (restart backend): the stack did not return to its steady state within 5 s: "
        "backend: exited/- exit=137\nWhat to do: observastack status --project obsk-plug-unit; "
        "observastack logs SERVICE --project obsk-plug-unit; observastack converge --project "
        "obsk-plug-unit starts what Docker gave up on"
    )
    assert len(chaos.events) == 1  # recorded even so


def test_failed_block_and_failed_restoration_keep_the_block_error(docker_calls: list[Any]) -> None:
    stack = FakeStack(ready_error=ServiceNotReady("still paused"))
    chaos = Chaos(stack, FakeAgent(), probe=lambda: None, restore_timeout_s=5)  # type: ignore[arg-type]
    with pytest.raises(KeyError) as caught, chaos.paused_backend():
        raise KeyError("in the block")
    assert "and afterwards: chaos (pause backend)" in caught.value.__notes__[0]


def test_no_action_without_the_steady_state_first(docker_calls: list[Any]) -> None:
    class Down(FakeAgent):
        def status(self) -> AgentStatus:
            raise ControlError("GET /agent/status answered 503")

    chaos = Chaos(FakeStack(), Down(), probe=lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ControlError, match=r"chaos \(kill agent\) needs the steady state first"):
        chaos.kill_agent()
    assert docker_calls == []
