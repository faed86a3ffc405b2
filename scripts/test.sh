#!/usr/bin/env bash
# Builds and runs the whole test suite: installs missing packages, starts private PostgreSQL and
# Redis on loopback, runs every test (unit, integration, end-to-end) in a Release build, then the
# unit and integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Set TRANSNOTES_SKIP_SANITIZERS=1 to skip the sanitizer pass locally.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

export TRANSNOTES_SERVICES_DIR="${TRANSNOTES_SERVICES_DIR:-$(mktemp -d /tmp/transnotes-services.XXXXXX)}"
trap 'bash scripts/services.sh stop' EXIT
# A failed start must stop the run: without the services the integration tests would skip.
services_env="$(bash scripts/services.sh start)"
eval "$services_env"
if [ -z "${TRANSNOTES_TEST_DATABASE_URL:-}" ] || [ -z "${TRANSNOTES_TEST_REDIS_URL:-}" ]; then
  echo "test.sh: PostgreSQL/Redis for the tests did not start" >&2
  exit 1
fi

jobs="$(nproc)"
echo "== Release build"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"
echo "== Release tests"
ctest --preset release -j"$jobs" --timeout 600

if [ "${TRANSNOTES_SKIP_SANITIZERS:-0}" != "1" ]; then
  echo "== ASan + UBSan build"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j"$jobs"
  echo "== ASan + UBSan tests"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp"
  ctest --preset asan -j"$jobs" --timeout 900
fi
