#!/usr/bin/env bash
# Set up the environment (a virtualenv in .venv) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash test.sh -m "not slow"` or `bash test.sh tests/unit`.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-env.sh
exec "$PY" -m pytest -q "$@"
