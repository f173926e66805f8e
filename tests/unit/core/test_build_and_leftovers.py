"""Image tags follow the source; leftover detection follows dead owner pids."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pytest_observastack._build import CONTEXT, default_image, project_root, source_digest
from pytest_observastack._leftovers import RUN_PROJECT, run_project_name


def _copy_context(dst: Path) -> Path:
    root = project_root()
    for entry in CONTEXT:
        src = root / entry
        if src.is_file():
            (dst / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst / entry)
        else:
            shutil.copytree(src, dst / entry, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_digest_is_stable_and_follows_every_context_file(tmp_path: Path) -> None:
    tree = _copy_context(tmp_path)
    first = source_digest(tree)
    assert source_digest(tree) == first
    (tree / "sut" / "app.py").write_text((tree / "sut" / "app.py").read_text() + "\n# change\n")
    assert source_digest(tree) != first


def test_bytecode_does_not_change_the_digest(tmp_path: Path) -> None:
    tree = _copy_context(tmp_path)
    before = source_digest(tree)
    (tree / "sut" / "__pycache__").mkdir(exist_ok=True)
    (tree / "sut" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0junk")
    assert source_digest(tree) == before


def test_default_image_tag_is_content_addressed() -> None:
    tag = default_image()
    assert tag.startswith("observastack/runtime:src-")
    assert len(tag.rsplit("-", 1)[1]) == 12


def test_run_project_names_carry_the_owner_pid() -> None:
    name = run_project_name(os.getpid(), "a1b2c3")
    match = RUN_PROJECT.match(name)
    assert match is not None
    assert int(match["pid"]) == os.getpid()
    assert RUN_PROJECT.match("obsk-keep-0123456789") is None
    assert RUN_PROJECT.match("observastack") is None
