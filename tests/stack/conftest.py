"""Tests against the real stack: one session stack shared by every test here."""

from __future__ import annotations

import pytest

from pytest_observastack._stack import Stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/stack/" in str(item.fspath):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(autouse=True)
def _steady_stack(request: pytest.FixtureRequest) -> None:
    """Start every test that uses the session stack from the steady state: all services healthy.

    Earlier tests restart and kill things; Docker sometimes gives up on the agent (its one restart
    attempt came while the backend was still restarting). ``wait_ready`` converges that, with a
    deadline, so one test's aftermath never becomes the next test's failure.
    """
    if "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        if isinstance(stack, Stack):
            stack.wait_ready(90)
