#!/usr/bin/env bash
# Set up WCMS with its test tools in .venv and run the whole suite: lint, type check,
# unit, storage (SQLite and PostgreSQL) and end-to-end tests with real processes.
# Extra arguments go to pytest (e.g. -k presence). The suite runs in two parts: most
# tests in parallel workers (WCMS_TEST_WORKERS, default 3: the end-to-end tests mostly
# wait on real processes), then the `serial` ones (a real browser) alone.
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
workers="${WCMS_TEST_WORKERS:-3}"
status=0
.venv/bin/python -m pytest -p no:cacheprovider -n "$workers" --dist loadfile -m "not serial" "$@" \
    || status=$?
[ "$status" -eq 5 ] && status=0  # nothing collected (a -k that picks none here)
serial=0
.venv/bin/python -m pytest -p no:cacheprovider -m serial "$@" || serial=$?
[ "$serial" -eq 5 ] && serial=0
[ "$status" -ne 0 ] && exit "$status"
exit "$serial"
