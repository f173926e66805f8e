"""Find and remove stacks left behind by test runs that died (Ctrl-C, SIGKILL, crash).

Per-run projects are named ``obsk-<pid>-<hex>``: the pid of the pytest process (or xdist worker)
that owns them. A project whose owner pid is gone is a leftover; its containers, networks and
volumes (found by Compose's project label) are removed. Kept stacks (``obsk-keep-*``) and stacks
named by the user are never touched.
"""

from __future__ import annotations

import re

import psutil

from pytest_observastack._compose import docker
from pytest_observastack._hostlink import unprotect_hostlink

__all__ = ["RUN_PROJECT", "cleanup_leftovers", "remove_project", "run_project_name"]

RUN_PROJECT = re.compile(r"^obsk-(?P<pid>\d+)-[0-9a-f]{6}$")
PROJECT_LABEL = "com.docker.compose.project"


def run_project_name(pid: int, suffix: str) -> str:
    return f"obsk-{pid}-{suffix}"


def _projects_of(kind: str) -> set[str]:
    fmt = '{{.Label "' + PROJECT_LABEL + '"}}'
    if kind == "container":
        out = docker("ps", "-a", "--filter", f"label={PROJECT_LABEL}", "--format", fmt).stdout
    else:
        out = docker(kind, "ls", "--filter", f"label={PROJECT_LABEL}", "--format", fmt).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def remove_project(project: str) -> None:
    """Remove a project's containers, networks and volumes by label (no compose file needed)."""
    label = f"label={PROJECT_LABEL}={project}"
    ids = docker("ps", "-aq", "--filter", label).stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids, timeout=120)
    for kind in ("network", "volume"):
        names = docker(kind, "ls", "-q", "--filter", label).stdout.split()
        if names:
            docker(kind, "rm", *names, timeout=60, check=False)
    unprotect_hostlink(project)


def cleanup_leftovers() -> list[str]:
    """Remove every per-run project whose owner process no longer exists; return their names."""
    projects = _projects_of("container") | _projects_of("network") | _projects_of("volume")
    removed = []
    for project in sorted(projects):
        match = RUN_PROJECT.match(project)
        if match and not psutil.pid_exists(int(match["pid"])):
            remove_project(project)
            removed.append(project)
    return removed
