#!/usr/bin/env bash
# Set up WCMS in .venv (server extra) and run `wcms demo`: a server and one local agent
# on SQLite. Extra arguments go to `wcms demo` (e.g. --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv server
exec .venv/bin/wcms demo "$@"
