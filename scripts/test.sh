#!/usr/bin/env bash
# Set up (if needed), build the image, and run the whole test suite against one session stack.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -q`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/observastack build
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "[test] pytest collected no tests (exit 5): treat as failure, the suite must not be empty" >&2
  exit 1
fi
exit "$code"
