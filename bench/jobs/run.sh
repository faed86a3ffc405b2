#!/usr/bin/env bash
# Job-throughput benchmark for transnotes (see bench/README.md, "Job throughput").
#
#   bench/jobs/run.sh [options]
#     --binary PATH        transnotes binary (default build/release/src/app/transnotes)
#     --baseline PATH      a second binary (e.g. built before a change): each round measures both,
#                          alternating, same settings; medians per binary and N at the end
#     --engine apertium|marian   (default apertium, en->es)
#     --checkpoint DIR     marian: a MarianMT checkpoint folder (e.g. bench/mt's
#                          mt_make_checkpoint output); served as opus-mt-en-es
#     --int8               marian: --marian-int8
#     --workers W          in-process worker threads (default 2; "auto": the server picks, e.g.
#                          32 when MarianMT batches across jobs)
#     --baseline-workers W the baseline server's worker threads (default: --workers); with
#                          --baseline set to the same binary, compares two worker counts
#     --baseline-args "A"  extra `serve` arguments for the baseline only (word-split), e.g.
#                          "--batch-wait-ms -1" to compare cross-job batching on and off
#     --counts "1 8 64"    notes submitted at once per measurement
#     --rounds R           measurements per binary and N (default 3)
#     --results DIR        raw outputs and server logs (default /tmp/transnotes-bench-jobs.*)
#     -- ARGS...           passed to every `serve` (e.g. -- --apertium-pipelines 4)
#
# BENCH_LOG_LEVEL (default warn) is the servers' LOG_LEVEL (debug shows MarianMT's cross-job
# batches).
#
# Each binary runs as its own `transnotes serve` (embedded: SQLite + in-process bus), started
# once with a fresh data dir and a bench user; every measurement is bench/jobs/submit.py: N new
# notes of 3-5 sentences, then N translate requests at once, completion read from the event
# stream. Only 127.0.0.1; every server it starts is stopped on exit (by pid).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/jobs"

binary="$ROOT/build/release/src/app/transnotes" baseline="" engine=apertium checkpoint=""
int8=0 workers=2 baseline_workers="" baseline_args="" counts="1 8 64" rounds=3 results=""
extra=()
while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --engine) engine="$2"; shift 2 ;;
    --checkpoint) checkpoint="$2"; shift 2 ;;
    --int8) int8=1; shift ;;
    --workers) workers="$2"; shift 2 ;;
    --baseline-workers) baseline_workers="$2"; shift 2 ;;
    --baseline-args) baseline_args="$2"; shift 2 ;;
    --counts) counts="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,29p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
case "$engine" in
  apertium) ;;
  marian) [ -d "$checkpoint" ] || { echo "run.sh: --engine marian needs --checkpoint DIR" >&2; exit 2; } ;;
  *) echo "run.sh: bad --engine $engine" >&2; exit 2 ;;
esac

work="$(mktemp -d /tmp/transnotes-bench-jobs.XXXXXX)"
[ -n "$results" ] || results="$work/results"
mkdir -p "$results"
server_pids=()

stop_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${server_pids[@]}"; do stop_pid "$pid"; done
  rm -rf "$work"/data-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() {
  for _ in $(seq 600); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "run.sh: $1 did not come up" >&2
  return 1
}

engine_args=(--engines "$engine")
if [ "$engine" = marian ]; then
  mkdir -p "$work/models"
  ln -s "$(cd "$checkpoint" && pwd)" "$work/models/opus-mt-en-es"
  engine_args+=(--models-dir "$work/models")
  ((int8)) && engine_args+=(--marian-int8)
fi
bench_secret="bench-secret-$(date +%s%N)-0123456789abcdef0123456789"
credentials='{"username":"bench","password":"Bench-Harbor-58-kettle"}'

declare -A base_of pid_of token_of
labels=(new)
declare -A binary_of=([new]="$binary") workers_of=([new]="$workers") args_of=([new]="")
if [ -n "$baseline" ]; then
  labels=(old new)
  binary_of[old]="$baseline"
  workers_of[old]="${baseline_workers:-$workers}"
  args_of[old]="$baseline_args"
fi
for label in "${labels[@]}"; do
  [ -x "${binary_of[$label]}" ] || { echo "run.sh: no binary at ${binary_of[$label]}" >&2; exit 1; }
  port="$(free_port)"
  worker_args=() warmup_n="${workers_of[$label]}"
  if [ "${workers_of[$label]}" = auto ]; then
    warmup_n=8
  else
    worker_args=(--workers "${workers_of[$label]}")
  fi
  read -r -a label_args <<<"${args_of[$label]}"
  env -u DATABASE_URL -u REDIS_URL LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" SECRET_KEY="$bench_secret" \
    "${binary_of[$label]}" serve --host 127.0.0.1 --port "$port" --threads 2 "${worker_args[@]}" \
    --data-dir "$work/data-$label" "${engine_args[@]}" --auth jwt --access-token-lifetime 86400 \
    --throttle-auth off --throttle-translate off --max-active-jobs 0 "${extra[@]}" \
    "${label_args[@]}" >>"$results/server-$label.log" 2>&1 &
  pid_of[$label]=$!
  server_pids+=("$!")
  base_of[$label]="http://127.0.0.1:$port"
  wait_http "${base_of[$label]}/health"
  curl -s -o /dev/null -X POST "${base_of[$label]}/api/v1/auth/register/" \
    -H 'Content-Type: application/json' -d "$credentials"
  token_of[$label]="$(curl -sf -X POST "${base_of[$label]}/api/v1/auth/token/" \
    -H 'Content-Type: application/json' -d "$credentials" | jq -r .access)"
  # Warm-up: the engine's pipelines (or the model's first pass) are not part of any figure.
  BENCH_TOKEN="${token_of[$label]}" python3 "$HERE/submit.py" --base "${base_of[$label]}" \
    --n "$warmup_n" --seed 999 >>"$results/warmup-$label.txt"
done

echo "== transnotes job bench: engine=$engine workers=$(for l in "${labels[@]}"; do printf '%s:%s ' "$l" "${workers_of[$l]}"; done)counts=\"$counts\" rounds=$rounds" \
  "serve args: ${extra[*]:-(none)}${baseline_args:+; baseline only: $baseline_args}" >&2
echo "   binaries: $(for l in "${labels[@]}"; do printf "%s=%s " "$l" "${binary_of[$l]}"; done)" >&2
uptime >&2
for ((round = 1; round <= rounds; round++)); do
  for n in $counts; do
    for label in "${labels[@]}"; do
      line="$(BENCH_TOKEN="${token_of[$label]}" python3 "$HERE/submit.py" \
        --base "${base_of[$label]}" --n "$n" --server-pid "${pid_of[$label]}" --seed "$round")"
      echo "$label round=$round $line" | tee -a "$results/raw.txt" >&2
    done
  done
done
uptime >&2

# Medians per binary and N.
echo
printf '%-5s %5s %9s %9s %9s %12s %12s %12s %6s %7s\n' binary n notes/s p50_ms p90_ms cpu_ms/note \
  server_cpu engine_cpu busy% failed
for label in "${labels[@]}"; do
  for n in $counts; do
    grep "^$label .* n=$n " "$results/raw.txt" | awk -v label="$label" -v n="$n" '
      function median(a, k,   i, j, t) {
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
      }
      { for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
        k++; r[k] = v["notes_s"]; p[k] = v["p50_ms"]; q[k] = v["p90_ms"]; c[k] = v["cpu_ms_per_note"]
        s[k] = v["server_cpu_ms_per_note"]; e[k] = v["engine_cpu_ms_per_note"]
        b[k] = v["machine_busy_pct"]; failed += v["failed"] }
      END { printf "%-5s %5d %9.1f %9.1f %9.1f %12.2f %12.2f %12.2f %6.0f %7d\n", label, n,
              median(r, k), median(p, k), median(q, k), median(c, k), median(s, k), median(e, k),
              median(b, k), failed }'
  done
done
# With a baseline: the median over rounds of each round's new/old ratio (both measured within
# seconds of each other, so a change in the machine's load mostly cancels out).
if [ -n "$baseline" ]; then
  echo
  printf '%5s %18s %18s\n' n "notes/s new/old" "p50 new/old"
  for n in $counts; do
    awk -v n="$n" '
      function median(a, k,   i, j, t) {
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
      }
      $0 ~ (" n=" n " ") {
        for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
        rate[$1, v["round"]] = v["notes_s"]; p50[$1, v["round"]] = v["p50_ms"]; rounds[v["round"]] = 1
      }
      END {
        for (r in rounds) if (("old", r) in rate && ("new", r) in rate) {
          k++; a[k] = rate["new", r] / rate["old", r]; b[k] = p50["new", r] / p50["old", r]
        }
        if (k) printf "%5d %18.2f %18.2f\n", n, median(a, k), median(b, k)
      }' "$results/raw.txt"
  done
fi
echo "raw outputs: $results" >&2
