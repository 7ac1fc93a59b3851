#!/usr/bin/env bash
# Set up WCMS with its test tools in .venv and run the whole suite: lint, type check,
# unit, storage (SQLite and PostgreSQL) and end-to-end tests with real processes.
# Extra arguments go to pytest (e.g. -k presence).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
. scripts/system-deps.sh
. scripts/browser.sh
ensure_venv test
ensure_system_deps
ensure_browser
echo "== ruff"
.venv/bin/ruff check src tests
echo "== mypy"
.venv/bin/mypy src/wcms
.venv/bin/mypy --platform win32 src/wcms/agent src/wcms/protocol src/wcms/policy.py
echo "== pytest"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
