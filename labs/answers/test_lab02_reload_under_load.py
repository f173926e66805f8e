"""Lab 2: reload the backend through the process channel, dropping no request (answer key)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_observastack import AgentClient, LoadRun


@pytest.mark.lab("graceful-reload", points=2)
def test_reload_replaces_workers_but_not_the_master(agent: AgentClient) -> None:
    before = agent.status()
    after = agent.reload()
    assert after.master_pid == before.master_pid
    assert set(after.worker_pids).isdisjoint(before.worker_pids)


@pytest.mark.lab("graceful-reload", points=3)
def test_three_reloads_under_load_drop_nothing(
    agent: AgentClient, load: Callable[..., LoadRun]
) -> None:
    with load(rate=100, duration_s=6) as run:
        for _ in range(3):
            agent.reload()
    assert run.result.failed == 0, run.result.describe()
