"""The session's target without an engine: reuse naming and replacement, and the --gcp import."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_observastack import _target
from pytest_observastack._options import PluginSettings
from pytest_observastack._stack import StackOptions
from pytest_observastack._target import (
    gcp_module,
    open_deployment,
    open_local_stack,
    reuse_project,
    session_options,
)


def test_reuse_name_is_per_checkout_and_per_worker(tmp_path: Path) -> None:
    one = reuse_project(PluginSettings(reuse=True), tmp_path / "a")
    assert one.startswith("obsk-keep-")
    assert len(one) == len("obsk-keep-") + 8
    assert reuse_project(PluginSettings(reuse=True), tmp_path / "a") == one
    assert reuse_project(PluginSettings(reuse=True), tmp_path / "b") != one
    assert reuse_project(PluginSettings(reuse=True, worker="gw1"), tmp_path / "a") == f"{one}-gw1"
    layered = PluginSettings(reuse=True, compose_files=(Path("extra.yaml"),))
    assert reuse_project(layered, tmp_path / "a") != one


def test_session_options_name_the_kept_stack() -> None:
    assert session_options(PluginSettings()).project is None
    assert str(session_options(PluginSettings(reuse=True)).project).startswith("obsk-keep-")
    assert session_options(PluginSettings(reuse=True, project="mine")).project == "mine"


@dataclass
class FakeCompose:
    env: dict[str, str]


@dataclass
class FakeStack:
    options: StackOptions
    say: Any = None
    key: str = "k-new"
    attach: bool = True
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started_here = False
        self.compose = FakeCompose({"OBSERVASTACK_STACK_KEY": self.key})
        self.project = str(self.options.project)

    def up(self) -> FakeStack:
        self.started_here = not (self.options.reuse and self.attach)
        LOG.append(f"up build={self.options.build} started={self.started_here}")
        return self

    def down(self) -> None:
        LOG.append("down")


LOG: list[str] = []


@pytest.fixture
def fake_stacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    LOG.clear()
    monkeypatch.setattr(_target, "Stack", FakeStack)
    monkeypatch.setattr("pytest_observastack._target.tempfile.gettempdir", lambda: str(tmp_path))
    return LOG


def test_reuse_attaches_when_the_key_matches(
    fake_stacks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_target, "_running_keys", lambda project: {"k-new"})
    said: list[str] = []
    with open_local_stack(StackOptions(project="obsk-plug-r", reuse=True), say=said.append) as s:
        assert s.project == "obsk-plug-r"
    assert fake_stacks == ["up build=True started=False"]
    assert said[-1].startswith("attached to stack obsk-plug-r in ")
    assert said[-1].endswith(" s (kept)")


def test_reuse_replaces_a_stack_with_another_key(
    fake_stacks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_target, "_running_keys", lambda project: {"k-old0000000"})
    said: list[str] = []
    with open_local_stack(StackOptions(project="obsk-plug-r", reuse=True), say=said.append):
        pass
    assert fake_stacks == ["up build=True started=False", "down", "up build=False started=False"]
    assert said[0] == (
        "stack obsk-plug-r runs other compose files or another image (key k-old00000, wanted "
        "k-new); replacing it"
    )


def test_reuse_serialises_sessions_with_a_lock_file(
    fake_stacks: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_target, "_running_keys", lambda project: {"k-new"})
    with open_local_stack(StackOptions(project="obsk-plug-l", reuse=True), say=print):
        pass
    assert (tmp_path / "observastack-locks" / "obsk-plug-l.lock").exists()


def test_missing_gcp_module_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytest_observastack._gcp", None)
    with pytest.raises(pytest.UsageError) as caught:
        gcp_module()
    assert str(caught.value) == (
        "--gcp needs pytest_observastack._gcp (the two-host deployment client), which this "
        "installation does not have; update the checkout, or run without --gcp"
    )


def test_gcp_module_missing_a_dependency_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'google.cloud'", name="google.cloud")

    monkeypatch.setattr("pytest_observastack._target.importlib.import_module", broken)
    with pytest.raises(pytest.UsageError, match=r"importing pytest_observastack._gcp failed: No "):
        gcp_module()


class FakeDeployment:
    entered = closed = False

    @classmethod
    def from_settings(cls, path: str | None, environ: Any, *, say: Any) -> FakeDeployment:
        deployment = cls()
        deployment.path, deployment.environ = path, dict(environ)  # type: ignore[attr-defined]
        return deployment

    def __enter__(self) -> FakeDeployment:
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True


def test_gcp_target_comes_from_settings_is_entered_and_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("pytest_observastack._gcp")
    module.GcpDeployment = FakeDeployment  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pytest_observastack._gcp", module)
    settings = PluginSettings(gcp=True, gcp_settings="gcp.toml")
    with open_deployment(settings, StackOptions(), say=print, environ={"A": "1"}) as deployment:
        assert isinstance(deployment, FakeDeployment)
        assert deployment.entered
        assert (deployment.path, deployment.environ) == ("gcp.toml", {"A": "1"})  # type: ignore[attr-defined]
    assert deployment.closed
