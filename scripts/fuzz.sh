#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (see fuzz/README.md).
#
#   scripts/fuzz.sh [--grow-corpus] TARGET SECONDS   one target, e.g. fuzz_router 120
#   scripts/fuzz.sh [--grow-corpus] all SECONDS      every target, FUZZ_JOBS (default 2) at a time
#
# Configures and builds build/fuzz (preset "fuzz", clang) when needed, then fuzzes each target
# for SECONDS on a copy of its seed corpus fuzz/corpus/<target>/: the committed corpus never
# changes unless --grow-corpus is given, which merges in only the new inputs that reach new
# coverage. Exits non-zero when a target crashed (or leaked, timed out or ran out of memory) and
# prints the reproducer's path; `build/fuzz/fuzz/<target> <reproducer>` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

grow=0
if [ "${1:-}" = "--grow-corpus" ]; then
  grow=1
  shift
fi
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [--grow-corpus] TARGET|all SECONDS" >&2
  exit 2
fi
what="$1"
seconds="$2"
jobs="${FUZZ_JOBS:-2}"

all_targets=()
for source in fuzz/fuzz_*.cpp; do
  all_targets+=("$(basename "$source" .cpp)")
done
if [ "$what" = "all" ]; then
  targets=("${all_targets[@]}")
elif [ -f "fuzz/$what.cpp" ]; then
  targets=("$what")
else
  echo "fuzz.sh: no target '$what'; targets: ${all_targets[*]}" >&2
  exit 2
fi

if [ ! -f build/fuzz/CMakeCache.txt ]; then
  cmake --preset fuzz >/dev/null
fi
cmake --build build/fuzz --target "${targets[@]}" -j"$(nproc)"

work="$(mktemp -d /tmp/transnotes-fuzz-run.XXXXXX)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp}"

# Fuzzes one target into $work/<target>/ and writes its exit status to $work/<target>/status.
run_target() {
  local target="$1" dir="$work/$1"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [ -d "fuzz/corpus/$target" ]; then
    cp -r "fuzz/corpus/$target/." "$dir/corpus/"
  fi
  local status=0
  # -timeout: one input running this long is a finding (a hang); the outer timeout only guards
  # against the fuzzer itself not stopping.
  timeout --signal=KILL "$((seconds + 120))" \
    "build/fuzz/fuzz/$target" "$dir/corpus" -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    >"$dir/log" 2>&1 || status=$?
  echo "$status" >"$dir/status"
}

# One line per target: how fast it ran, the coverage it reached, and its result.
report_target() {
  local target="$1" dir="$work/$1" status
  status="$(cat "$dir/status")"
  local done_line rate
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log" | tail -1 || true)"
  rate="$(grep -E '^stat::average_exec_per_sec' "$dir/log" | awk '{print $2}' || true)"
  local coverage
  coverage="$(sed -nE 's/.*(cov: [0-9]+ ft: [0-9]+ corp: [0-9]+\/[0-9A-Za-z]+).*/\1/p' <<<"$done_line")"
  if [ "$status" = "0" ]; then
    printf '%-20s ok     %6s exec/s  %s\n' "$target" "${rate:-?}" "$coverage"
    return 0
  fi
  printf '%-20s FAILED (exit %s)\n' "$target" "$status"
  grep -E 'ERROR: |SUMMARY: |runtime error: |==[0-9]+==' "$dir/log" | head -20 | sed 's/^/    /'
  local reproducer
  reproducer="$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$dir/log" | tail -1)"
  if [ -n "$reproducer" ]; then
    echo "    reproducer: $reproducer"
    echo "    replay:     build/fuzz/fuzz/$target $reproducer"
  else
    echo "    no reproducer written; log: $dir/log"
  fi
  return 1
}

running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "fuzz.sh: $target for ${seconds}s"
  run_target "$target" &
  running=$((running + 1))
done
wait

failed=0
for target in "${targets[@]}"; do
  report_target "$target" || failed=1
done

if [ "$grow" = "1" ]; then
  for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    "build/fuzz/fuzz/$target" -merge=1 "fuzz/corpus/$target" "$work/$target/corpus" \
      >"$work/$target/merge.log" 2>&1 ||
      { echo "fuzz.sh: merging into fuzz/corpus/$target failed: $work/$target/merge.log" >&2; failed=1; }
  done
fi

if [ "$failed" = "0" ]; then
  rm -rf "$work"
else
  echo "fuzz.sh: logs and reproducers kept in $work" >&2
fi
exit "$failed"
