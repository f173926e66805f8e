"""The plugin against the real engine: reuse attaches fast, SIGKILL leaves nothing behind after
the next run, xdist workers get a stack each, and every chaos action restores the steady state.

The first three run inner pytest sessions in subprocesses (each with its own stack); only the
chaos tests use this session's stack.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pytest_observastack._agent import AgentClient
from pytest_observastack._build import BuildPlan, build_images
from pytest_observastack._chaos import Chaos
from pytest_observastack._compose import docker
from pytest_observastack._leftovers import remove_project
from pytest_observastack._waits import wait_until

# Plugins this project does not need in an inner session (they cost seconds of start-up).
QUIET = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest",
         "-p", "no:anyio", "-p", "no:benchmark")  # fmt: skip
LABEL = "label=com.docker.compose.project={}"
DOCKER_CONFIG = os.environ.get("DOCKER_CONFIG", str(Path.home() / ".docker"))


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester moves HOME to a temporary folder; the docker client still needs its plugins
    (Compose v2 lives in ~/.docker/cli-plugins)."""
    monkeypatch.setenv("DOCKER_CONFIG", DOCKER_CONFIG)
    return pytester


def _resources(project: str) -> dict[str, list[str]]:
    """Containers, networks and volumes labelled with ``project`` (empty lists: none left)."""
    label = LABEL.format(project)
    return {
        "containers": docker("ps", "-aq", "--filter", label).stdout.split(),
        "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
        "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
    }


def _nothing_left(project: str) -> dict[str, list[str]]:
    return {kind: ids for kind, ids in _resources(project).items() if ids}


def _started_projects(output: str) -> list[str]:
    return re.findall(r"starting stack (obsk-\S+)", output)


@pytest.fixture(scope="module")
def image() -> str:
    """This tree's image, built once here, so both reuse sessions run the very same image even
    while other people edit the sources."""
    return build_images(BuildPlan(), say=lambda _: None).image


def test_second_reuse_session_attaches_within_two_seconds(
    pytester: pytest.Pytester, image: str
) -> None:
    project = f"obsk-plug-reuse-{secrets.token_hex(3)}"
    pytester.makepyfile(test_inner="def test_up(stack):\n    assert stack.url('user')\n")
    args = (*QUIET, "--observastack-reuse", "--observastack-project", project,
            "--observastack-image", image)  # fmt: skip
    try:
        first = pytester.runpytest_subprocess(*args, timeout=300)
        first.assert_outcomes(passed=1)
        first.stdout.fnmatch_lines([f"*started stack {project} in * s (kept)"])
        began = time.monotonic()
        second = pytester.runpytest_subprocess(*args, timeout=120)
        whole = time.monotonic() - began
        second.assert_outcomes(passed=1)
        found = re.search(rf"attached to stack {project} in ([0-9.]+) s", second.stdout.str())
        assert found, second.stdout.str()
        attach = float(found[1])
        print(f"\nreuse: attached in {attach:.2f} s; whole second session {whole:.2f} s")
        assert attach <= 2.0, f"attaching took {attach:.2f} s"
    finally:
        remove_project(project)
    assert _nothing_left(project) == {}


def test_sigkill_mid_run_leaves_nothing_after_the_next_run(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    flag = tmp_path / "stack-is-up"
    pytester.makepyfile(
        test_hold=f"""
        import pathlib, time

        def test_hold(stack):
            pathlib.Path({str(flag)!r}).write_text(stack.project)
            time.sleep(300)  # until the test kills this process (bounded if it does not)
        """
    )
    argv = [sys.executable, "-m", "pytest", *QUIET, "test_hold.py"]
    proc = pytester.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = ""
    try:
        wait_until(lambda: flag.is_file() or proc.poll() is not None, bool, timeout=300,
                   interval=0.5, what="the inner session's stack to come up")  # fmt: skip
        assert proc.poll() is None, f"the inner session ended by itself (exit {proc.returncode})"
        killed = flag.read_text()
        assert re.fullmatch(rf"obsk-{proc.pid}-[0-9a-f]{{6}}", killed)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert _resources(killed)["containers"], "the killed run should have left its stack"

    pytester.makepyfile(test_hold="def test_up(stack):\n    assert stack.url('user')\n")
    again = pytester.runpytest_subprocess(*QUIET, timeout=300)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines([f"*removed leftover stack {killed} (its test run is gone)"])
    (second,) = _started_projects(again.stdout.str())
    assert _nothing_left(killed) == {}
    assert _nothing_left(second) == {}


def test_two_xdist_workers_get_a_stack_each(pytester: pytest.Pytester, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    pytester.makepyfile(
        test_workers=f"""
        import os, pathlib, pytest

        @pytest.mark.parametrize("n", range(4))
        def test_own_stack(stack, user_client, worker_id, n):
            assert stack.project.startswith(f"obsk-{{os.getpid()}}-")
            assert user_client.get("/api/items").status_code == 200
            pathlib.Path({str(seen)!r}, f"{{worker_id}}-{{n}}").write_text(stack.project)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", *QUIET, timeout=400)
    result.assert_outcomes(passed=4)
    by_worker = {p.name.split("-")[0]: p.read_text() for p in seen.iterdir()}
    assert set(by_worker) == {"gw0", "gw1"}, by_worker
    assert len(set(by_worker.values())) == 2, by_worker
    for project in by_worker.values():
        assert _nothing_left(project) == {}


# -- chaos on this session's stack (these run last: the chaos fixture marks them) ----------------


def _steady(agent: AgentClient, user_client: httpx.Client) -> None:
    assert len(agent.status().worker_pids) == 2
    assert user_client.get("/api/items").status_code == 200


@pytest.mark.parametrize(
    ("action", "control_plane_goes_down"),
    [("restart_backend", True), ("kill_backend", True), ("stop_start_backend", True),
     ("kill_agent", True), ("restart_vault", False)],
)  # fmt: skip
def test_chaos_action_restores_the_steady_state(
    chaos: Chaos,
    agent: AgentClient,
    user_client: httpx.Client,
    action: str,
    control_plane_goes_down: bool,
) -> None:
    event = getattr(chaos, action)()
    _steady(agent, user_client)
    assert chaos.events == [event]
    if control_plane_goes_down:
        assert event.downtime, f"{action}: the probe should have seen the agent gone"
    print(f"\n{action}: control plane down {event.downtime_s:.2f} s, "
          f"steady again after {event.ended - event.started:.1f} s")  # fmt: skip


def test_paused_backend_stalls_the_user_path(
    chaos: Chaos, agent: AgentClient, user_client: httpx.Client
) -> None:
    with chaos.paused_backend(), pytest.raises(httpx.TimeoutException):
        user_client.get("/api/items", timeout=1.0)
    _steady(agent, user_client)


def test_cut_control_network_takes_the_control_plane_down_for_the_cut(
    chaos: Chaos, agent: AgentClient, user_client: httpx.Client, secure_client: httpx.Client
) -> None:
    with chaos.control_network_cut():
        assert secure_client.get("/agent/status").status_code in (401, 503)
        assert user_client.get("/api/items").status_code == 200  # the user-path is not cut
    _steady(agent, user_client)
    (window,) = chaos.events[-1].downtime
    assert window.duration_s > 0


def test_cut_for_seconds_is_down_at_least_that_long(
    chaos: Chaos, agent: AgentClient, user_client: httpx.Client
) -> None:
    event = chaos.cut_control_network(2.0)
    _steady(agent, user_client)
    assert event.downtime_s >= 1.5, event
