"""Helpers for the GCP unit tests: Terraform through python-hcl2, compose files through YAML or
``docker compose config`` (the Compose CLI renders files without an engine)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
TF_DIR = REPO / "gcp" / "terraform"
COMPOSE_DIR = REPO / "fixtures" / "compose"
SUT_HOST_OVERRIDE = REPO / "gcp" / "compose.sut-host.yaml"
SIM_OVERRIDE = COMPOSE_DIR / "compose.gcp-sim.yaml"
_META_KEYS = {"__is_block__", "__comments__", "__start_line__", "__end_line__"}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string literals quoted ('"x"'); drop one layer, recursively."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [unquote(item) for item in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k not in _META_KEYS}
    return value


def heredoc(value: str) -> str:
    """The text of a ``<<-EOT`` heredoc as python-hcl2 returns it."""
    match = re.fullmatch(r"<<-?(\w+)\n(.*?)\n\s*\1", value, re.DOTALL)
    assert match, f"not a heredoc: {value[:60]!r}"
    return textwrap.dedent(match[2])


@dataclass
class Terraform:
    """Every .tf file of a directory, merged: resources by type and name, variables, ..."""

    resources: dict[str, dict[str, dict[str, Any]]]
    variables: dict[str, dict[str, Any]]
    locals: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    raw: dict[str, str]  # file name -> text

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(kind, {})


def load_terraform(directory: Path = TF_DIR) -> Terraform:
    import hcl2

    tf = Terraform({}, {}, {}, {}, {})
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text()
        tf.raw[path.name] = text
        document = unquote(hcl2.loads(text))
        for block in document.get("resource", []):
            for kind, named in block.items():
                tf.resources.setdefault(kind, {}).update(named)
        for block in document.get("variable", []):
            tf.variables.update(block)
        for block in document.get("locals", []):
            tf.locals.update(block)
        for block in document.get("output", []):
            tf.outputs.update(block)
    return tf


@dataclass(frozen=True)
class Tagged:
    """A YAML node carrying a Compose merge tag (``!reset``, ``!override``)."""

    tag: str
    value: Any


class _ComposeLoader(yaml.SafeLoader):
    pass


def _construct_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tagged:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.ScalarNode)
        value = loader.construct_scalar(node)
        value = None if value in ("", "~", "null") else value
    return Tagged("!" + suffix, value)


_ComposeLoader.add_multi_constructor("!", _construct_tagged)


def load_compose_yaml(path: Path) -> dict[str, Any]:
    # _ComposeLoader is a SafeLoader that only also knows the merge tags.
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_ComposeLoader)
    return data


def compose_cli_or_skip() -> list[str]:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (needed to render compose files)")
    proc = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip
    if proc.returncode != 0 or not proc.stdout.strip().lstrip("v").startswith("2"):
        pytest.skip("Docker Compose v2 is not installed (needed to render compose files)")
    return ["docker", "compose"]


def render_compose(files: list[Path], env: Mapping[str, str]) -> dict[str, Any]:
    """``docker compose config`` of ``files`` (no engine needed), as a dict."""
    argv = [*compose_cli_or_skip(), "--project-name", "obsk-gcp-render"]
    for file in files:
        argv += ["-f", str(file)]
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()), **env}
    proc = subprocess.run([*argv, "config", "--format", "json"], capture_output=True, text=True,
                          timeout=60, check=False, env=clean_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rendered: dict[str, Any] = json.loads(proc.stdout)
    return rendered
