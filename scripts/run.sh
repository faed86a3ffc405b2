#!/usr/bin/env bash
# Quick start: installs what is missing (Debian 12), builds in Release and starts the service on
# the embedded default (SQLite in ./data, in-memory cache, in-process workers, Apertium en<->es).
# Extra arguments go to `transnotes serve`, e.g. scripts/run.sh --port 9000 --workers 4
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target transnotes -j"$(nproc)"
exec ./build/release/src/app/transnotes serve "$@"
