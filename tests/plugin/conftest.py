"""The plugin's own tests: pytester sessions and unit tests, no Docker engine, a few seconds."""

from __future__ import annotations

import pytest


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose inner sessions never reach a Docker engine and ignore the outer ini."""
    from pytest_observastack import plugin

    def no_engine_needed() -> None:
        raise AssertionError("a plugin test asked whether the Docker engine runs")

    monkeypatch.setattr(plugin, "engine_problem", no_engine_needed)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:benchmark\n")
    return pytester
