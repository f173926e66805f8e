"""Command-line options and their ini equivalents, read once into ``PluginSettings``.

Data in: pytest's parser (``add_options``) and the parsed config (``read_settings``). Every option
is namespaced ``--observastack-*`` (``--gcp`` is short for ``--observastack-gcp``) and has an ini
key of the same name with underscores; the command line wins over the ini file. Data out: a
frozen ``PluginSettings``, and from it the ``StackOptions`` the session stack is stood up with.
Bad values raise ``pytest.UsageError`` naming the option and the accepted values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_observastack._stack import StackOptions

__all__ = ["OPTIONS", "PluginSettings", "add_options", "read_settings"]

VAULT_MODES = ("auto", "real", "standin")
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # what docker compose accepts


@dataclass(frozen=True)
class Option:
    flag: str
    dest: str  # also the ini key
    kind: str  # bool | string
    help: str
    metavar: str = ""


OPTIONS = (
    Option("--observastack-gcp", "observastack_gcp", "bool",
           "target the two-host GCP deployment instead of a local stack"),
    Option("--observastack-gcp-settings", "observastack_gcp_settings", "string",
           "settings file of the GCP deployment (default: OBSERVASTACK_GCP_* environment)",
           "PATH"),
    Option("--observastack-keep", "observastack_keep", "bool",
           "leave the stack running after the session (for debugging)"),
    Option("--observastack-reuse", "observastack_reuse", "bool",
           "attach to a running stack with the same compose files and image, or start one "
           "and keep it (one per checkout, and per xdist worker)"),
    Option("--observastack-project", "observastack_project", "string",
           "compose project name (default: obsk-<pid>-<hex>, unique per run and xdist worker)",
           "NAME"),
    Option("--observastack-report", "observastack_report", "string",
           "write the JSON grading report (per test: lab, points, outcome, duration, message; "
           "chaos downtime windows) to this path", "PATH"),
    Option("--observastack-image", "observastack_image", "string",
           "image tag to run as it is (default: the image of this source tree, built when "
           "missing)",
           "TAG"),
    Option("--observastack-no-build", "observastack_no_build", "bool",
           "do not build the image; use it as it is"),
    Option("--observastack-vault", "observastack_vault", "string",
           "vault service: auto (real image if obtainable), real, standin", "MODE"),
)  # fmt: skip


@dataclass(frozen=True)
class PluginSettings:
    """What the command line and ini file asked for (no defaults hidden elsewhere)."""

    gcp: bool = False
    gcp_settings: str | None = None
    keep: bool = False
    reuse: bool = False
    project: str | None = None
    compose_files: tuple[Path, ...] = ()
    report: Path | None = None
    image: str | None = None
    build: bool = True
    vault: str = "auto"
    worker: str | None = None  # xdist worker id ("gw0"), None outside xdist

    def stack_options(self) -> StackOptions:
        """Options of the local session stack; under xdist a fixed name gets ``-<worker>``; a
        given image is used as it is (building would re-tag it with this tree's sources)."""
        project = self.project
        if project and self.worker:
            project = f"{project}-{self.worker}"
        return StackOptions(
            project=project,
            extra_compose_files=self.compose_files,
            keep=self.keep,
            reuse=self.reuse,
            build=self.build and self.image is None,
            vault=self.vault,
            image=self.image,
        )


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("observastack", "ObservaStack testbed")
    for option in OPTIONS:
        flags = [option.flag]
        if option.dest == "observastack_gcp":
            flags.insert(0, "--gcp")
        if option.kind == "bool":
            group.addoption(*flags, action="store_true", default=None, dest=option.dest,
                            help=option.help)  # fmt: skip
            parser.addini(option.dest, option.help, type="bool", default=False)
        else:
            group.addoption(*flags, default=None, dest=option.dest, help=option.help,
                            metavar=option.metavar)  # fmt: skip
            parser.addini(option.dest, option.help, default="")
    group.addoption("--observastack-compose-file", action="append", default=None,
                    dest="observastack_compose_files", metavar="PATH",
                    help="extra compose file layered on top (repeatable)")  # fmt: skip
    parser.addini("observastack_compose_files", "extra compose files layered on top",
                  type="paths", default=[])  # fmt: skip


def _value(config: pytest.Config, name: str) -> object:
    value = config.getoption(name)
    return config.getini(name) if value is None else value


def _text(config: pytest.Config, name: str) -> str | None:
    value = str(_value(config, name) or "").strip()
    return value or None


def read_settings(config: pytest.Config) -> PluginSettings:
    """Validate and merge command line and ini; ``pytest.UsageError`` on a bad value."""
    vault = _text(config, "observastack_vault") or "auto"
    if vault not in VAULT_MODES:
        raise pytest.UsageError(
            f"--observastack-vault must be one of {', '.join(VAULT_MODES)}, not {vault!r}"
        )
    project = _text(config, "observastack_project")
    if project is not None and not _PROJECT_NAME.match(project):
        raise pytest.UsageError(
            f"--observastack-project {project!r} is not a compose project name: use lowercase "
            "letters, digits, '-' and '_', starting with a letter or digit"
        )
    files = config.getoption("observastack_compose_files") or config.getini(
        "observastack_compose_files"
    )
    report = _text(config, "observastack_report")
    report_path = None
    if report is not None:
        from_cli = config.getoption("observastack_report") is not None
        base = config.invocation_params.dir if from_cli else config.rootpath
        report_path = base / report
    worker_input = getattr(config, "workerinput", None)
    return PluginSettings(
        gcp=bool(_value(config, "observastack_gcp")),
        gcp_settings=_text(config, "observastack_gcp_settings"),
        keep=bool(_value(config, "observastack_keep")),
        reuse=bool(_value(config, "observastack_reuse")),
        project=project,
        compose_files=tuple(Path(f) for f in files),
        report=report_path,
        image=_text(config, "observastack_image"),
        build=not _value(config, "observastack_no_build"),
        vault=vault,
        worker=str(worker_input["workerid"]) if worker_input else None,
    )
