#!/usr/bin/env bash
# Builds and runs the whole test suite: installs missing packages, starts private PostgreSQL and
# Redis on loopback, runs every test (unit, integration, end-to-end) in a Release build, then the
# unit and integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Set TRANSNOTES_SKIP_SANITIZERS=1 to skip the sanitizer pass locally.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The web app's browser tests (ctest browser_tests, in both passes: under the sanitizers the
# server's streaming and static paths then serve a real browser) need node and Debian's chromium;
# the build installs their npm packages itself (npm ci). Missing, the run stops here, not skips.
for tool in node npm /usr/bin/chromium; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

export TRANSNOTES_SERVICES_DIR="${TRANSNOTES_SERVICES_DIR:-$(mktemp -d /tmp/transnotes-services.XXXXXX)}"
trap 'bash scripts/services.sh stop' EXIT
# A failed start must stop the run: without the services the integration tests would skip.
services_env="$(bash scripts/services.sh start)"
eval "$services_env"
if [ -z "${TRANSNOTES_TEST_DATABASE_URL:-}" ] || [ -z "${TRANSNOTES_TEST_REDIS_URL:-}" ]; then
  echo "test.sh: PostgreSQL/Redis for the tests did not start" >&2
  exit 1
fi

# Runs one ctest preset and fails the run when any test skipped: a test whose input is missing must
# fail, not skip. The one allowed skip is a test that needs a GPU (its name says GPU) on a machine
# without one.
run_ctest() {
  local preset="$1" timeout="$2" log
  log="$(mktemp /tmp/transnotes-ctest.XXXXXX)"
  set +e
  ctest --preset "$preset" -j"$jobs" --timeout "$timeout" 2>&1 | tee "$log"
  local status="${PIPESTATUS[0]}"
  set -e
  local skipped
  skipped="$(grep -E '\*\*\*Skipped|\(Skipped\)|Not Run' "$log" || true)"
  rm -f "$log"
  if [ -n "$skipped" ] && [ -e /dev/nvidia0 ]; then
    :  # a GPU is present: no skip is allowed at all
  elif [ -n "$skipped" ]; then
    skipped="$(printf '%s\n' "$skipped" | grep -v 'GPU' || true)"
  fi
  if [ -n "$skipped" ]; then
    echo "test.sh: tests were skipped; a test whose input is missing must fail instead:" >&2
    printf '%s\n' "$skipped" >&2
    return 1
  fi
  return "$status"
}

jobs="$(nproc)"
# Each step's start and length, so a slow CI run shows where its time went.
run_started=$SECONDS step_started=$SECONDS
step() {
  echo "== $1 (previous step $((SECONDS - step_started)) s, $((SECONDS - run_started)) s in all)"
  step_started=$SECONDS
}
step "Release build"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"
step "Release tests"
run_ctest release 600

if [ "${TRANSNOTES_SKIP_SANITIZERS:-0}" != "1" ]; then
  step "ASan + UBSan build"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j"$jobs"
  step "ASan + UBSan tests"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp"
  run_ctest asan 900
fi

# libFuzzer targets (fuzz/README.md), ~20 s each, two at a time: a short pass that catches a
# regression in a parser of untrusted input; longer runs are `scripts/fuzz.sh all SECONDS`.
# Set TRANSNOTES_SKIP_FUZZ=1 to skip it locally.
if [ "${TRANSNOTES_SKIP_FUZZ:-0}" != "1" ]; then
  step "Fuzz"
  bash scripts/fuzz.sh all "${TRANSNOTES_FUZZ_SECONDS:-20}"
fi
step "done"
