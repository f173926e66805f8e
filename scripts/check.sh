#!/usr/bin/env bash
# Every check a developer should run before pushing (no Docker engine needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
python -m pytest -p no:cacheprovider -q tests/unit tests/plugin "$@"
