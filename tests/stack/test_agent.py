"""The process channel against the real stack: signals, shared fate, isolation of the agent."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pytest_observastack._agent import AgentClient
from pytest_observastack._compose import docker
from pytest_observastack._load import LoadRun
from pytest_observastack._metrics import MetricsClient
from pytest_observastack._stack import Stack
from pytest_observastack._waits import wait_until


def test_status_describes_master_workers_and_generation(agent: AgentClient) -> None:
    status = agent.status()
    assert status.master_pid > 1
    assert len(status.worker_pids) == 2
    assert status.master_pid not in status.worker_pids
    assert status.generation > 0


def test_reload_replaces_every_worker_and_keeps_the_master(agent: AgentClient) -> None:
    before = agent.status()
    after = agent.reload()
    assert after.master_pid == before.master_pid
    assert not set(before.worker_pids) & set(after.worker_pids)
    assert after.generation == before.generation


def test_ten_reloads_under_load_fail_no_request(
    stack: Stack, agent: AgentClient, metrics: MetricsClient
) -> None:
    served = {"route": "/api/whoami", "status": "200"}
    before = metrics.scrape().total("observastack_http_requests", **served)
    with LoadRun(stack, rate=200, duration_s=14, path="/api/whoami") as run:
        # The first HUP only once the load is flowing (about a second's worth served).
        metrics.wait_for("observastack_http_requests", lambda n: n >= before + 200,
                         timeout=10, **served)  # fmt: skip
        for _ in range(10):
            agent.reload()
    result = run.result
    assert result.sent >= 2000, result.describe()
    assert result.failed == 0, result.describe()


def test_usr1_reopens_the_access_log(
    stack: Stack, agent: AgentClient, user_client: httpx.Client
) -> None:
    log = "/var/log/sut/access.log"
    stack.exec("backend", "mv", log, f"{log}.1")
    tag = uuid.uuid4().hex
    agent.reopen_logs()
    for _ in range(20):
        assert user_client.get("/api/whoami", params={"tag": tag}).status_code == 200

    def count(path: str) -> int:
        out = stack.exec("backend", "grep", "-c", tag, path).stdout.strip()
        return int(out or 0)

    wait_until(
        lambda: count(log), lambda n: n == 20, timeout=5, what="20 tagged lines in the new log"
    )
    assert count(f"{log}.1") == 0


def test_ttin_and_ttou_scale_workers(agent: AgentClient) -> None:
    start = len(agent.status().worker_pids)
    assert len(agent.add_worker().worker_pids) == start + 1
    assert len(agent.remove_worker().worker_pids) == start
    while len(agent.status().worker_pids) > 1:
        agent.remove_worker()
    assert len(agent.remove_worker().worker_pids) == 1  # TTOU at one worker leaves one
    while len(agent.status().worker_pids) < start:
        agent.add_worker()


BAD_SIGNALS = [9, "9", "STOP", "SIGSTOP", "SIGCONT", "INT", "hup; kill -9 1", "", None, ["HUP"],
               "SIGSEGV", "HUPP", "SIG"]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_SIGNALS, ids=repr)
def test_bad_signal_input_gets_400_and_sends_nothing(
    agent: AgentClient, secure_client: httpx.Client, bad: object
) -> None:
    before = agent.status()
    response = secure_client.post("/agent/signals", json={"signal": bad})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    after = agent.status()
    assert after.worker_pids == before.worker_pids
    assert after.master_pid == before.master_pid


def test_extra_fields_and_non_json_are_refused(secure_client: httpx.Client) -> None:
    assert secure_client.post("/agent/signals", json={"signal": "HUP", "pid": 1}).status_code == 400
    assert secure_client.post("/agent/signals", content=b"HUP").status_code == 400


class TestIsolation:
    def test_agent_sees_only_the_backend_namespace(self, stack: Stack) -> None:
        listing = (
            "import os, json\n"
            "def cmd(p):\n"
            "    try:\n"
            "        raw = open(f'/proc/{p}/cmdline', 'rb').read()\n"
            "        return raw.replace(b'\\0', b' ').decode()\n"
            "    except OSError:\n"
            "        return None\n"  # the process ended while we listed
            "found = {p: cmd(p) for p in os.listdir('/proc') if p.isdigit()}\n"
            "print(json.dumps({p: c for p, c in found.items() if c is not None}))"
        )
        in_agent = json.loads(stack.exec("agent", "python", "-c", listing).stdout)
        in_backend = json.loads(stack.exec("backend", "python", "-c", listing).stdout)
        # One namespace: PID 1 is the backend's init, and both see the same long-lived processes.
        assert "docker-init" in in_agent["1"] or "tini" in in_agent["1"]
        assert any("-m agent" in c for c in in_backend.values()), "backend should see the agent"
        masters = {p for p, c in in_agent.items() if "gunicorn: master" in c}
        assert len(masters) == 1
        assert masters <= set(in_backend)
        # Nothing of the host or of another container: only init, Gunicorn and the agent.
        strangers = {
            p: c for p, c in in_agent.items()
            # runc init / curl: the engine's own exec of a healthcheck, briefly in this namespace
            if not any(k in c for k in ("docker-init", "gunicorn", "-m agent", "import os, json",
                                        "observastack-hog", "runc", "curl"))
        }  # fmt: skip
        assert strangers == {}

    def test_agent_has_no_capabilities(self, stack: Stack) -> None:
        status = stack.exec("agent", "cat", "/proc/self/status").stdout
        caps = {line.split(":")[0]: line.split()[1] for line in status.splitlines()
                if line.startswith("Cap")}  # fmt: skip
        assert caps["CapEff"] == "0000000000000000"
        assert caps["CapPrm"] == "0000000000000000"
        assert "NoNewPrivs:\t1" in status


# Shared fate: these restart the backend; they run last in this module.


def _generation(agent: AgentClient) -> float:
    return agent.status().generation


def test_term_completes_in_flight_request_then_rebinds(
    stack: Stack, agent: AgentClient, user_client: httpx.Client
) -> None:
    before = _generation(agent)
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(user_client.get, "/api/io", params={"ms": 2000})
        time.sleep(0.3)  # the request is inside a worker now
        after = agent.terminate(timeout=60)
        assert in_flight.result(timeout=30).status_code == 200
    assert after.generation != before
    stack.wait_ready(60)


def test_kill_restarts_backend_and_leaves_no_orphans(stack: Stack, agent: AgentClient) -> None:
    before = agent.status()
    after = agent.kill(timeout=60)
    assert after.generation != before.generation
    assert len(after.worker_pids) == 2
    ps = stack.exec("backend", "ps", "-eo", "pid,ppid,args").stdout
    workers = [line for line in ps.splitlines() if "gunicorn: worker" in line]
    assert len(workers) == 2
    assert all(int(line.split()[1]) == after.master_pid for line in workers), ps
    stack.wait_ready(60)


def test_engine_restart_of_backend_recovers(stack: Stack, agent: AgentClient) -> None:
    # Usually by itself (the restart policy); when Docker's one restart attempt of the agent
    # came before the backend was running again, Docker gives up and converge starts it.
    before = _generation(agent)
    docker("restart", stack.container("backend"), timeout=60)
    stack.wait_ready(90)
    after = agent.wait_rebound(before, timeout=60)
    assert len(after.worker_pids) == 2


def test_engine_kill_of_backend_recovers_via_converge(stack: Stack, agent: AgentClient) -> None:
    # Docker treats `docker kill` as a manual stop: no restart policy. Converge starts it again.
    before = _generation(agent)
    docker("kill", stack.container("backend"), timeout=60)
    stack.wait_ready(90)
    assert agent.wait_rebound(before, timeout=60).generation != before


def test_stop_then_start_backend_recovers_via_converge(stack: Stack, agent: AgentClient) -> None:
    before = _generation(agent)
    stack.compose.run("stop", "backend", timeout=60)
    stack.compose.run("start", "backend", timeout=60)
    stack.wait_ready(90)  # converges: starts the agent Docker gave up on
    assert agent.wait_rebound(before, timeout=60).generation != before


def test_sigkill_of_the_agent_itself_recovers(stack: Stack, agent: AgentClient) -> None:
    first = agent.status()
    docker("kill", "--signal", "KILL", stack.container("agent"), timeout=30)
    stack.wait_ready(60)
    again = wait_until(agent.status, lambda s: s.master_pid == first.master_pid, timeout=30,
                       what="the agent to answer again")  # fmt: skip
    assert again.generation == first.generation
