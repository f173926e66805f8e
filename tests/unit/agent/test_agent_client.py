"""AgentClient's post-condition logic, against a scripted agent (httpx.MockTransport)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pytest_observastack._agent import AgentClient, AgentStatus, ProcessRef
from pytest_observastack._errors import (
    ControlError,
    PostconditionFailed,
    SignalRejected,
    WaitTimeout,
)

Outage = type[httpx.TransportError] | int


@dataclass
class FakeAgent:
    """A scripted control plane: status, signals with effects, and /api/whoami."""

    generation: float = 1000.0
    master: tuple[int, float] = (10, 100.0)
    workers: list[tuple[int, float]] = field(default_factory=lambda: [(11, 101.0), (12, 102.0)])
    effects: dict[str, Callable[[], None]] = field(default_factory=dict)
    outage: list[Outage] = field(default_factory=list)  # answers before the next real status
    signal_answer: Outage | None = None  # instead of a 202
    refusal: tuple[int, str] | None = None
    whoami: Callable[[], dict[str, int]] | None = None
    received: list[str] = field(default_factory=list)
    next_pid: int = 100

    def spawn(self) -> tuple[int, float]:
        self.next_pid += 1
        return (self.next_pid, 200.0 + self.next_pid)

    def secure(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/agent/status":
            if self.outage:
                return self._fail(self.outage.pop(0), request)
            return httpx.Response(200, json=self.status_json())
        if request.url.path == "/agent/signals" and request.method == "POST":
            name = httpx.Response(200, content=request.content).json()["signal"]
            self.received.append(name)
            if self.refusal is not None:
                status, kind = self.refusal
                return httpx.Response(
                    status,
                    json={
                        "type": f"urn:observastack:agent:{kind}",
                        "title": "Signal refused",
                        "status": status,
                        "detail": "the bound master 10 is gone",
                    },
                    headers={"content-type": "application/problem+json"},
                )
            self.effects.get(name, lambda: None)()
            if self.signal_answer is not None:
                return self._fail(self.signal_answer, request)
            return httpx.Response(
                202,
                json={
                    "signal": f"SIG{name}",
                    "delivered_to": {"pid": self.master[0], "create_time": self.master[1]},
                    "delivery": "sent",
                    "generation": self.generation,
                },
            )
        return httpx.Response(404, json={"detail": "no route"})

    def user(self, request: httpx.Request) -> httpx.Response:
        if self.whoami is not None:
            return httpx.Response(200, json=self.whoami())
        return httpx.Response(200, json={"pid": self.workers[0][0], "ppid": self.master[0]})

    def status_json(self) -> dict[str, Any]:
        return {
            "master": {"pid": self.master[0], "create_time": self.master[1], "title": "m"},
            "workers": [{"pid": p, "create_time": t} for p, t in self.workers],
            "generation": self.generation,
            "agent_uptime_s": 1.0,
            "backend_uptime_s": 2.0,
            "signals": [],
        }

    @staticmethod
    def _fail(outage: Outage, request: httpx.Request) -> httpx.Response:
        if isinstance(outage, int):
            return httpx.Response(outage, text="upstream unavailable")
        raise outage("connection refused", request=request)

    # effects that behave like Gunicorn
    def hup(self) -> None:
        self.workers = [self.spawn() for _ in self.workers]

    def ttin(self) -> None:
        self.workers.append(self.spawn())

    def ttou(self) -> None:
        if len(self.workers) > 1:
            self.workers.pop(0)

    def restart(self, down_for: list[Outage]) -> Callable[[], None]:
        def effect() -> None:
            self.outage = list(down_for)
            self.generation += 50
            self.master = self.spawn()
            self.workers = [self.spawn(), self.spawn()]

        return effect


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def client(agent: FakeAgent) -> Iterator[AgentClient]:
    secure = httpx.Client(transport=httpx.MockTransport(agent.secure), base_url="http://secure")
    user = httpx.Client(transport=httpx.MockTransport(agent.user), base_url="http://user")
    yield AgentClient(secure, user, poll_interval=0.01)
    secure.close()
    user.close()


def test_status_is_typed(client: AgentClient) -> None:
    status = client.status()
    assert isinstance(status, AgentStatus)
    assert status.master == ProcessRef(10, 100.0)
    assert status.master_pid == 10
    assert status.worker_pids == (11, 12)
    assert status.generation == 1000.0
    assert "master 10" in status.describe()


def test_a_malformed_status_is_a_control_error(agent: FakeAgent, client: AgentClient) -> None:
    agent.status_json = lambda: {"master": {}}  # type: ignore[method-assign]
    with pytest.raises(ControlError, match="not in the expected shape"):
        client.status()


def test_reload_checks_master_workers_and_serving(agent: FakeAgent, client: AgentClient) -> None:
    agent.effects["HUP"] = agent.hup
    after = client.reload(timeout=1)
    assert agent.received == ["HUP"]
    assert after.master_pid == 10
    assert not {11, 12} & set(after.worker_pids)
    assert len(after.workers) == 2


def test_reload_with_an_old_worker_left(agent: FakeAgent, client: AgentClient) -> None:
    agent.effects["HUP"] = lambda: agent.workers.__setitem__(1, agent.spawn())
    with pytest.raises(PostconditionFailed) as info:
        client.reload(timeout=0.3)
    message = str(info.value)
    assert message.startswith(
        "reload (HUP): expected master 10 unchanged, none of the workers [11, 12] left, 2 workers"
    )
    assert "last seen: master 10 (started 100.0), workers [11, 101] (2)" in message
    assert "\nWhat to do:" in message
    assert "graceful timeout" in message


def test_reload_when_the_master_changed(agent: FakeAgent, client: AgentClient) -> None:
    def new_master() -> None:
        agent.master = (50, 500.0)
        agent.hup()

    agent.effects["HUP"] = new_master
    with pytest.raises(PostconditionFailed, match="but the master changed: before master 10"):
        client.reload(timeout=1)


def test_reload_when_no_new_worker_answers(agent: FakeAgent, client: AgentClient) -> None:
    agent.effects["HUP"] = agent.hup
    agent.whoami = lambda: {"pid": 11, "ppid": 10}
    with pytest.raises(PostconditionFailed) as info:
        client.reload(timeout=0.3)
    message = str(info.value)
    assert "workers were replaced ([11, 12] -> [101, 102])" in message
    assert "did not answer from a new worker (ppid 10, pid not in [11, 12])" in message
    assert "last seen: {'pid': 11, 'ppid': 10}" in message


def test_reload_expects_the_configured_count_when_told(
    agent: FakeAgent, client: AgentClient
) -> None:
    agent.workers.append((13, 103.0))
    agent.effects["HUP"] = lambda: setattr(agent, "workers", [agent.spawn(), agent.spawn()])
    with pytest.raises(PostconditionFailed, match="3 workers"):
        client.reload(timeout=0.2)
    assert len(client.reload(timeout=1, workers=2).workers) == 2


def test_add_and_remove_worker(agent: FakeAgent, client: AgentClient) -> None:
    agent.effects.update(TTIN=agent.ttin, TTOU=agent.ttou)
    assert len(client.add_worker(timeout=1).workers) == 3
    assert len(client.remove_worker(timeout=1).workers) == 2
    assert len(client.remove_worker(timeout=1).workers) == 1
    assert len(client.remove_worker(timeout=1).workers) == 1, "TTOU at one worker leaves one"
    assert agent.received == ["TTIN", "TTOU", "TTOU", "TTOU"]


def test_add_worker_that_never_boots(agent: FakeAgent, client: AgentClient) -> None:
    with pytest.raises(PostconditionFailed) as info:
        client.add_worker(timeout=0.2)
    message = str(info.value)
    assert message.startswith("add worker (TTIN): expected master 10 unchanged and 3 workers")
    assert "workers [11, 12] (2)" in message
    assert "fail to boot" in message


def test_reopen_logs_keeps_everything(agent: FakeAgent, client: AgentClient) -> None:
    assert client.reopen_logs().worker_pids == (11, 12)
    agent.effects["USR1"] = agent.hup
    with pytest.raises(PostconditionFailed, match=r"reopen logs \(USR1\): expected master 10"):
        client.reopen_logs(timeout=0.2)


def test_kill_waits_through_the_outage_for_a_new_generation(
    agent: FakeAgent, client: AgentClient
) -> None:
    agent.effects["KILL"] = agent.restart([httpx.ConnectError, 502, 503, httpx.ReadError])
    agent.signal_answer = httpx.RemoteProtocolError  # the agent died before answering
    after = client.kill(timeout=2)
    assert after.generation == 1050.0
    assert after.master_pid != 10
    assert agent.received == ["KILL"]


def test_terminate_accepts_a_202(agent: FakeAgent, client: AgentClient) -> None:
    agent.effects["TERM"] = agent.restart([502])
    assert client.terminate(timeout=2).generation == 1050.0


def test_kill_without_a_restart_explains_the_converge_step(
    agent: FakeAgent, client: AgentClient
) -> None:
    agent.signal_answer = 502
    agent.effects["KILL"] = lambda: agent.outage.extend([httpx.ConnectError] * 1000)
    with pytest.raises(PostconditionFailed) as info:
        client.kill(timeout=0.3)
    message = str(info.value)
    assert "KILL was accepted but the control plane did not come back" in message
    assert "old: master 10 (started 100.0), workers [11, 12] (2), generation 1000.0" in message
    assert "last seen: ControlError: GET /agent/status failed: ConnectError" in message
    assert "\nWhat to do: check that the backend's restart policy" in message
    assert "observastack up" in message


def test_wait_rebound_tolerates_the_outage(agent: FakeAgent, client: AgentClient) -> None:
    agent.restart([httpx.ConnectError, 503, 502])()
    assert client.wait_rebound(1000.0, timeout=1).generation == 1050.0


def test_wait_rebound_timeout_says_what_to_do(client: AgentClient) -> None:
    with pytest.raises(WaitTimeout) as info:
        client.wait_rebound(1000.0, timeout=0.1)
    assert "generation other than 1000.0" in str(info.value)
    assert "docker compose up -d" in str(info.value)


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid-signal"), (503, "signal-refused")])
def test_refusals_carry_the_agents_detail(
    agent: FakeAgent, client: AgentClient, status: int, kind: str
) -> None:
    agent.refusal = (status, kind)
    with pytest.raises(SignalRejected) as info:
        client.signal("HUP")
    assert str(info.value) == (
        f"the agent refused 'HUP' (HTTP {status}): Signal refused: the bound master 10 is gone"
    )
    with pytest.raises(SignalRejected):
        client.kill(timeout=0.2)


def test_a_gateway_503_is_not_the_agents_refusal(agent: FakeAgent, client: AgentClient) -> None:
    agent.signal_answer = 503
    with pytest.raises(ControlError) as info:
        client.signal("HUP")
    assert not isinstance(info.value, SignalRejected)
    assert "answered 503" in str(info.value)


def test_an_unreachable_agent_is_a_control_error(agent: FakeAgent, client: AgentClient) -> None:
    agent.outage = [httpx.ConnectError]
    with pytest.raises(ControlError, match="GET /agent/status failed: ConnectError"):
        client.status()
    agent.signal_answer = httpx.ConnectError
    with pytest.raises(ControlError, match="POST /agent/signals 'HUP' failed: ConnectError"):
        client.signal("HUP")


def test_a_rejected_token_names_the_challenge() -> None:
    def deny(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            json={"title": "Unauthorized", "detail": "token expired"},
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    with httpx.Client(transport=httpx.MockTransport(deny), base_url="http://s") as secure:
        client = AgentClient(secure, secure)
        with pytest.raises(ControlError) as info:
            client.status()
    message = str(info.value)
    assert "answered 401: Unauthorized: token expired" in message
    assert 'WWW-Authenticate: Bearer error="invalid_token"' in message
