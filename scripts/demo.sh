#!/usr/bin/env bash
# The main job: set up (if needed), stand the stack up, and run the instructor answer keys of the
# labs against it, with a per-lab summary and a JSON report. The stack stays up afterwards
# (`observastack endpoints`, `observastack down` when done).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/observastack up --project observastack
.venv/bin/python -m pytest labs/answers -p no:cacheprovider -q \
  --observastack-project observastack --observastack-keep \
  --observastack-report lab-report.json "$@"
echo "[demo] stack left running: . .venv/bin/activate; observastack endpoints; observastack down" >&2
