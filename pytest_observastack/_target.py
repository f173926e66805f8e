"""What the session's tests run against: a local compose stack, or the GCP deployment (``--gcp``).

Data in: ``PluginSettings`` and the ``StackOptions`` derived from them. Data out: a context manager
yielding a ``Deployment``, the surface every fixture relies on (``url``, ``endpoints``,
``token_source``, ``status``, ``options.identity.audience``, ``project``): a ``Stack`` locally, a
``GcpDeployment`` (from ``pytest_observastack._gcp``, imported only under ``--gcp``) otherwise.

Reuse (``--observastack-reuse``): the kept stack is named ``obsk-keep-<checkout>`` (plus
``-<worker>`` under xdist), attached to when all its services are ready and its key label (a hash
of compose files, image id and environment) equals this session's key; a stack of that name with
another key is replaced. A lock file serialises sessions opening the same kept stack.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

from pytest_observastack._build import project_root
from pytest_observastack._compose import docker
from pytest_observastack._options import PluginSettings
from pytest_observastack._stack import Stack, StackOptions
from pytest_observastack._tokens import TokenSource

__all__ = [
    "Deployment",
    "gcp_module",
    "open_deployment",
    "open_local_stack",
    "reuse_project",
    "session_options",
]

GCP_MODULE = "pytest_observastack._gcp"
KEY_LABEL = "io.observastack.key"
Say = Callable[[str], None]


class Audience(Protocol):
    @property
    def audience(self) -> str: ...


class HasIdentity(Protocol):
    @property
    def identity(self) -> Audience: ...


class Deployment(Protocol):
    """The surface tests may rely on under both targets (local and ``--gcp``)."""

    @property
    def options(self) -> HasIdentity: ...

    @property
    def project(self) -> str: ...

    def url(self, name: str) -> str: ...

    def endpoints(self) -> dict[str, str]: ...

    def token_source(self) -> TokenSource: ...

    def status(self) -> Sequence[object]: ...


def gcp_module() -> ModuleType:
    """``pytest_observastack._gcp``, or a ``pytest.UsageError`` that says what is missing."""
    try:
        return importlib.import_module(GCP_MODULE)
    except ImportError as exc:
        if exc.name == GCP_MODULE:
            raise pytest.UsageError(
                f"--gcp needs {GCP_MODULE} (the two-host deployment client), which this "
                "installation does not have; update the checkout, or run without --gcp"
            ) from None
        raise pytest.UsageError(
            f"--gcp: importing {GCP_MODULE} failed: {exc}; install what it names "
            "(pip install -e '.[dev]'), or run without --gcp"
        ) from None


def reuse_project(settings: PluginSettings, root: Path) -> str:
    """``obsk-keep-<8 hex of checkout and extra compose files>[-<xdist worker>]``."""
    seed = "\0".join([str(root.resolve()), *(str(f.resolve()) for f in settings.compose_files)])
    name = f"obsk-keep-{hashlib.sha256(seed.encode()).hexdigest()[:8]}"
    return f"{name}-{settings.worker}" if settings.worker else name


def session_options(settings: PluginSettings) -> StackOptions:
    """``StackOptions`` for the session; with reuse and no project name, the kept stack's."""
    options = settings.stack_options()
    if options.reuse and not options.project:
        options = replace(options, project=reuse_project(settings, project_root()))
    return options


def _running_keys(project: str) -> set[str]:
    fmt = '{{.Label "' + KEY_LABEL + '"}}'
    out = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                 "--format", fmt, timeout=30).stdout  # fmt: skip
    return {line.strip() for line in out.splitlines() if line.strip()}


@contextmanager
def _project_lock(project: str) -> Iterator[None]:
    folder = Path(tempfile.gettempdir()) / "observastack-locks"
    folder.mkdir(exist_ok=True)
    with open(folder / f"{project}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _up_reusing(options: StackOptions, say: Say) -> Stack:
    assert options.project is not None
    with _project_lock(options.project):
        stack = Stack(options, say=say).up()
        if not stack.started_here:
            wanted = stack.compose.env["OBSERVASTACK_STACK_KEY"]
            found = _running_keys(stack.project)
            if found != {wanted}:
                say(f"stack {stack.project} runs other compose files or another image "
                    f"(key {', '.join(k[:10] for k in sorted(found))}, wanted {wanted[:10]}); "
                    "replacing it")  # fmt: skip
                stack.down()
                stack = Stack(replace(options, build=False), say=say).up()
        return stack


@contextmanager
def open_local_stack(options: StackOptions, *, say: Say) -> Iterator[Stack]:
    """Stand up (or, with ``reuse``, attach to) a local stack; tear it down unless kept."""
    started = time.monotonic()
    if options.reuse:
        stack = _up_reusing(options, say)
        verb = "started" if stack.started_here else "attached to"
        say(f"{verb} stack {stack.project} in {time.monotonic() - started:.2f} s (kept)")
        yield stack
        return
    with Stack(options, say=say) as stack:
        yield stack


@contextmanager
def open_deployment(
    settings: PluginSettings,
    options: StackOptions,
    *,
    say: Say,
    environ: Mapping[str, str] = os.environ,
) -> Iterator[Deployment]:
    """The session's target: the GCP deployment under ``--gcp``, else a local stack."""
    if settings.gcp:
        target = gcp_module().GcpDeployment.from_settings(settings.gcp_settings, environ, say=say)
        with target as deployment:  # waits until its paths answer and checks the caller identity
            yield deployment
        return
    with open_local_stack(options, say=say) as stack:
        yield stack
