#!/usr/bin/env bash
# HTTP benchmark driver for transnotes (see bench/README.md, "HTTP benchmarks").
#
#   bench/http/run.sh [options]
#     --mode embedded|production  embedded: SQLite + in-memory cache/bus (default);
#                                 production: PostgreSQL + Redis from scripts/services.sh
#     --binary PATH               transnotes binary (default: build build/bench, target transnotes)
#     --threads N                 HTTP threads per process (default 4)
#     --threads-sweep "2 4 8"     first run retrieve at each --threads value; the best one is then
#                                 used for the other scenarios
#     --procs N                   API processes (production mode; default 1). With N > 1 each
#                                 process gets its own port and its own wrk (-t1, C/N connections);
#                                 req/s are summed, p50 is the mean and p99 the worst of the N
#     --workers N                 in-process translation workers (default 2)
#     --duration 10s  --connections 64  --wrk-threads 2
#     --scenarios "retrieve list stats patch mix create"
#     --seed N                    notes created before the runs (default 1000)
#     --dispatch N                also measure translate dispatch latency over N jobs (0: skip)
#     --no-nginx                  skip the nginx ceiling run
#     --pairs N                   alternate transnotes retrieve and nginx N times (median ratio)
#     --results DIR               keep raw wrk outputs and server logs there
#     --auth jwt|open             jwt (default): a bench user logs in and every request carries
#                                 its Bearer token; open: no accounts
#     --compare-open N            also start an --auth open server (embedded) and alternate the
#                                 retrieve load between it and the jwt server N times (median
#                                 Bearer/open ratio)
#     --compare-access-log N      also start a server on the same data with the JSON access log on
#                                 (LOG_LEVEL=info, its log to a file) and alternate the retrieve
#                                 load between it and the quiet one N times (median on/quiet
#                                 ratios of req/s and of the server's CPU time per request, the
#                                 steadier figure on a shared machine); each server's /metrics is
#                                 scraped every 0.2 s while it is measured (scrape time under
#                                 load, p50 and max, from the access-log server)
#     --baseline PATH             with --compare-access-log: a third server from another
#                                 transnotes binary (e.g. one built before a change), quiet too,
#                                 in the same alternation (median this/baseline ratio); with
#                                 --compare-sync: one more variant, run with its own defaults
#     --sqlite-sync full|normal   embedded: passed to every server (default: the binary's, full)
#     --server-args "ARGS"        more serve options for every server of the run
#     --compare-sync N            embedded: servers on the same data with --sqlite-sync full and
#                                 normal, each with group commit (--db-write-batch 64) and without
#                                 (1), and --baseline if given; the create and patch scenarios
#                                 alternate between them N times (median req/s and server CPU
#                                 per request per variant)
#     --count-fsyncs DURATION     with --compare-sync: afterwards, one create run of DURATION per
#                                 variant under `strace -f -c -e trace=fsync,fdatasync` (needs
#                                 strace and ptrace rights): fsyncs per acknowledged create
#
# Only 127.0.0.1; every server it starts is stopped on exit (by pid).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/http"

mode=embedded binary="" schema="" threads=4 sweep="" procs=1 workers=2
duration=10s connections=64 wrk_threads=2 seed=1000 dispatch=0 nginx=1 pairs=1 results=""
auth=jwt compare_open=0 compare_access_log=0 baseline=""
sqlite_sync="" server_args="" compare_sync=0 count_fsyncs=""
scenarios="retrieve list stats patch mix create"
while (($#)); do
  case "$1" in
    --mode) mode="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --threads-sweep) sweep="$2"; shift 2 ;;
    --procs) procs="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --wrk-threads) wrk_threads="$2"; shift 2 ;;
    --scenarios) scenarios="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --dispatch) dispatch="$2"; shift 2 ;;
    --no-nginx) nginx=0; shift ;;
    --pairs) pairs="$2"; shift 2 ;;
    --results) results="$2"; shift 2 ;;
    --auth) auth="$2"; shift 2 ;;
    --compare-open) compare_open="$2"; shift 2 ;;
    --compare-access-log) compare_access_log="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --sqlite-sync) sqlite_sync="$2"; shift 2 ;;
    --server-args) server_args="$2"; shift 2 ;;
    --compare-sync) compare_sync="$2"; shift 2 ;;
    --count-fsyncs) count_fsyncs="$2"; shift 2 ;;
    -h|--help) sed -n '2,52p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$mode" in embedded|production) ;; *) echo "run.sh: bad --mode $mode" >&2; exit 2 ;; esac
case "$auth" in jwt|open) ;; *) echo "run.sh: bad --auth $auth" >&2; exit 2 ;; esac
case "$sqlite_sync" in ""|full|normal) ;; *) echo "run.sh: bad --sqlite-sync $sqlite_sync" >&2; exit 2 ;; esac
if ((compare_sync > 0)) && [ "$mode" != embedded ]; then
  echo "run.sh: --compare-sync is for --mode embedded" >&2; exit 2
fi
if [ -n "$count_fsyncs" ]; then
  ((compare_sync > 0)) || { echo "run.sh: --count-fsyncs needs --compare-sync" >&2; exit 2; }
  command -v strace >/dev/null || { echo "run.sh: --count-fsyncs needs strace" >&2; exit 1; }
fi
for tool in wrk curl jq python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done

if [ -z "$binary" ]; then
  cmake -S "$ROOT" -B "$ROOT/build/bench" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$ROOT/build/bench" --target transnotes -j2 >/dev/null
  binary="$ROOT/build/bench/src/app/transnotes"
fi
[ -x "$binary" ] || { echo "run.sh: no binary at $binary" >&2; exit 1; }

work="$(mktemp -d /tmp/transnotes-bench-http.XXXXXX)"
[ -n "$results" ] || results="$work/results"
mkdir -p "$results"
server_pids=()
nginx_pid=""

stop_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
stop_servers() {
  local pid
  for pid in "${server_pids[@]}"; do stop_pid "$pid"; done
  server_pids=()
}
cleanup() {
  stop_servers
  [ -n "$nginx_pid" ] && stop_pid "$nginx_pid"
  rm -rf "$work/data" "$work/data-open" "$work/nginx" "$work/seed.curl"
  if [ -n "${schema:-}" ]; then  # production mode: the schema was only for this run
    "${TRANSNOTES_TEST_PG_BIN:-/usr/bin}/psql" -q "$TRANSNOTES_TEST_DATABASE_URL" \
      -c "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() {  # URL: waits up to 30 s for a 200
  for _ in $(seq 300); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "run.sh: $1 did not come up" >&2
  return 1
}

# --- server under test -----------------------------------------------------------------------
declare -a env_args=()
if [ "$mode" = production ]; then
  eval "$("$ROOT/scripts/services.sh" start)"
  schema="bench_$(date +%s)_$$"
  env_args=(DATABASE_URL="${TRANSNOTES_TEST_DATABASE_URL}?schema=${schema}"
    REDIS_URL="${TRANSNOTES_TEST_REDIS_URL%/*}/14" REDIS_CACHE_DB=15)
  # Databases 14 (job bus) and 15 (note cache) belong to this benchmark: start them empty, so a
  # previous run's cached note 1 (another schema's row) can't answer for this run's note 1.
  redis_port="${TRANSNOTES_TEST_REDIS_URL##*:}"; redis_port="${redis_port%%/*}"
  redis-cli -h 127.0.0.1 -p "$redis_port" -n 14 flushdb >/dev/null
  redis-cli -h 127.0.0.1 -p "$redis_port" -n 15 flushdb >/dev/null
fi

# Every process of a run signs with the same key, so a token from one is good on all. Tokens
# live for the whole run; the benchmark measures throughput, not the per-user limits.
bench_secret="bench-secret-$(date +%s%N)-0123456789abcdef0123456789"
auth_args=(--auth "$auth" --access-token-lifetime 86400 --throttle-auth off --throttle-translate off
  --max-active-jobs 0)
# Appended to every server's options (a baseline binary gets only --server-args).
read -r -a common_args <<<"$server_args"
sync_args=()
[ -n "$sqlite_sync" ] && sync_args=(--sqlite-sync "$sqlite_sync")

ports=()
start_servers() {  # THREADS
  local n port
  ports=()
  for ((n = 0; n < procs; n++)); do
    port="$(free_port)"
    env -u DATABASE_URL -u REDIS_URL "${env_args[@]}" LOG_LEVEL=warn SECRET_KEY="$bench_secret" \
      "$binary" serve --host 127.0.0.1 --port "$port" --threads "$1" --workers "$workers" \
      --data-dir "$work/data" "${auth_args[@]}" "${common_args[@]}" "${sync_args[@]}" \
      >>"$results/server-$n.log" 2>&1 &
    server_pids+=("$!")
    ports+=("$port")
    wait_http "http://127.0.0.1:$port/health"
  done
}

# Registers the bench user (once per database) and exports its access token as BENCH_TOKEN, which
# the Lua scripts and curl calls send.
login() {  # BASE_URL
  local credentials='{"username":"bench","password":"Bench-Harbor-58-kettle"}'
  curl -s -o /dev/null -X POST "$1/api/v1/auth/register/" -H 'Content-Type: application/json' \
    -d "$credentials"
  BENCH_TOKEN="$(curl -sf -X POST "$1/api/v1/auth/token/" -H 'Content-Type: application/json' \
    -d "$credentials" | jq -r .access)"
  export BENCH_TOKEN
}
curl_auth=()

seed_notes() {  # COUNT, through one keep-alive curl
  local base="http://127.0.0.1:${ports[0]}" i
  {
    for ((i = 1; i <= $1; i++)); do
      printf 'url = "%s/api/v1/notes/"\nheader = "Content-Type: application/json"\n' "$base"
      [ -n "${BENCH_TOKEN:-}" ] && printf 'header = "Authorization: Bearer %s"\n' "$BENCH_TOKEN"
      printf 'data = "{\\"title\\":\\"Seed %d\\",\\"original_text\\":\\"The quick brown fox jumps over the lazy dog, note %d.\\",\\"original_language\\":\\"en\\"}"\n' "$i" "$i"
      printf 'output = "/dev/null"\n'
      ((i < $1)) && printf 'next\n'
    done
  } >"$work/seed.curl"
  curl -sf -K "$work/seed.curl"
  # The id range the mix and patch scenarios draw from.
  local ids
  ids="$(curl -sf "${curl_auth[@]}" "$base/api/v1/notes/?limit=1000" | jq -r '[.[].id] | "\(min) \(max)"')"
  export BENCH_ID_MIN="${ids% *}" BENCH_ID_MAX="${ids#* }" BENCH_NOTE_ID="${ids% *}"
}

# --- measurement -----------------------------------------------------------------------------
export BENCH_HTTP_DIR="$HERE"
table=()
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# run_wrk LABEL SCRIPT PORT...: runs wrk against each port at once and records one table row.
run_wrk() {
  local label="$1" script="$2"; shift 2
  local n=$# port i=0 line lines=() rate=0 p50=0 p99=0 errs=0 wrk_pids=()
  for port in "$@"; do
    if ((n == 1)); then
      BENCH_NAME="$label" wrk -t"$wrk_threads" -c"$connections" -d"$duration" --timeout 10s --latency \
        -s "$HERE/$script.lua" "http://127.0.0.1:$port" >"$results/${label// /_}.$i.txt" 2>&1 &
    else
      BENCH_NAME="$label" wrk -t1 -c$((connections / n)) -d"$duration" --timeout 10s --latency \
        -s "$HERE/$script.lua" "http://127.0.0.1:$port" >"$results/${label// /_}.$i.txt" 2>&1 &
    fi
    wrk_pids+=("$!")
    i=$((i + 1))
  done
  wait "${wrk_pids[@]}" || true
  for ((i = 0; i < n; i++)); do
    line="$(grep '^BENCH ' "$results/${label// /_}.$i.txt" || true)"
    if [ -z "$line" ]; then
      echo "run.sh: wrk gave no result for $label:" >&2
      cat "$results/${label// /_}.$i.txt" >&2
      return 1
    fi
    lines+=("$line")
  done
  read -r rate p50 p99 errs < <(printf '%s\n' "${lines[@]}" | awk '
    { for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1]] = kv[2] }
      rate += v["req_s"]; p50 += v["p50_ms"]; if (v["p99_ms"] > p99) p99 = v["p99_ms"]
      errs += v["non2xx"] + v["socket_errors"] }
    END { printf "%.0f %.2f %.2f %d\n", rate, p50 / NR, p99, errs }')
  table+=("$(printf '%-24s %10s %9s %9s %7s' "$label" "$rate" "$p50" "$p99" "$errs")")
  printf '%-24s %10s req/s  p50 %7s ms  p99 %7s ms  errors %s\n' "$label" "$rate" "$p50" "$p99" \
    "$errs" >&2
  last_rate="$rate"
}

load_note=""
echo "== transnotes HTTP bench: mode=$mode procs=$procs duration=$duration c=$connections" \
  "wrk-threads=$wrk_threads binary=$binary" >&2
uptime >&2

start_servers "$threads"
if [ "$auth" = jwt ]; then
  login "http://127.0.0.1:${ports[0]}"
  curl_auth=(-H "Authorization: Bearer $BENCH_TOKEN")
fi
seed_notes "$seed"
load_note="$(curl -sf "${curl_auth[@]}" "http://127.0.0.1:${ports[0]}/api/v1/notes/$BENCH_NOTE_ID/")"

if [ -n "$sweep" ]; then
  best_rate=0 best_threads="$threads"
  for t in $sweep; do
    stop_servers
    start_servers "$t"
    curl -sf -o /dev/null "${curl_auth[@]}" "http://127.0.0.1:${ports[0]}/api/v1/notes/$BENCH_NOTE_ID/"  # warm the cache
    run_wrk "retrieve --threads $t" retrieve "${ports[@]}"
    if ((last_rate > best_rate)); then best_rate="$last_rate" best_threads="$t"; fi
  done
  threads="$best_threads"
  stop_servers
  start_servers "$threads"
fi

# CPU time (user + system, in clock ticks) the processes whose /proc/PID/stat files are named
# have used so far (one that ended meanwhile counts nothing).
ticks_of() { { cat "$@" 2>/dev/null || true; } | awk '{ t += $14 + $15 } END { print t + 0 }'; }
# Every PostgreSQL process's (production mode; else 0). Listed anew each time, so a backend the
# pool opened during a run counts whole (all its time is the run's).
postgres_ticks() {
  local pid files=(/dev/null)
  if [ "$mode" = production ]; then
    for pid in $(pgrep -x postgres); do files+=("/proc/$pid/stat"); done
  fi
  ticks_of "${files[@]}"
}
cpu_lines=()
for s in $scenarios; do
  curl -sf -o /dev/null "${curl_auth[@]}" "http://127.0.0.1:${ports[0]}/api/v1/notes/$BENCH_NOTE_ID/"
  if ((procs == 1)); then
    # Also the CPU each answer cost the server (and PostgreSQL): steadier than req/s when the
    # machine is shared.
    server_before="$(ticks_of "/proc/${server_pids[0]}/stat")"
    pg_before="$(postgres_ticks)"
    run_wrk "$s" "$s" "${ports[@]}"
    server_after="$(ticks_of "/proc/${server_pids[0]}/stat")"
    pg_after="$(postgres_ticks)"
    cpu_lines+=("$(awk -v s="$s" -v a=$((server_after - server_before)) -v b=$((pg_after - pg_before)) \
      -v hz="$(getconf CLK_TCK)" -v n="$(awk -v r="$last_rate" -v d="${duration%s}" 'BEGIN { print r * d }')" \
      -v pg="$mode" 'BEGIN { printf "%-24s %8.1f us server", s, 1e6 * a / hz / n
        if (pg == "production") printf " %8.1f us postgres", 1e6 * b / hz / n
        printf " CPU per request" }')")
  else
    run_wrk "$s" "$s" "${ports[@]}"
  fi
  [ "$s" = retrieve ] && app_retrieve="$last_rate"
done

dispatch_line=""
if ((dispatch > 0)); then
  dispatch_line="$("$HERE/dispatch.sh" "http://127.0.0.1:${ports[0]}" "$dispatch" || true)"
  echo "$dispatch_line" >&2
fi

auth_ratios=()
if ((compare_open > 0)); then
  [ "$auth" = jwt ] || { echo "run.sh: --compare-open needs --auth jwt" >&2; exit 2; }
  # An open-mode server beside the jwt one, same binary and settings, its own data dir with the
  # same note: each is idle while the other is measured.
  oport="$(free_port)"
  LOG_LEVEL=warn "$binary" serve --host 127.0.0.1 --port "$oport" --threads "$threads" \
    --workers "$workers" --data-dir "$work/data-open" --auth open >>"$results/server-open.log" 2>&1 &
  open_pid="$!"
  server_pids+=("$open_pid")
  wait_http "http://127.0.0.1:$oport/health"
  open_id="$(curl -sf -X POST "http://127.0.0.1:$oport/api/v1/notes/" \
    -H 'Content-Type: application/json' \
    -d "$(jq -c '{title, original_text, original_language}' <<<"$load_note")" | jq -r .id)"
  curl -sf -o /dev/null "http://127.0.0.1:$oport/api/v1/notes/$open_id/"
  for ((pair = 1; pair <= compare_open; pair++)); do
    run_wrk "retrieve bearer #$pair" retrieve "${ports[@]}"
    bearer_rate="$last_rate"
    BENCH_TOKEN="" BENCH_NOTE_ID="$open_id" run_wrk "retrieve open #$pair" retrieve "$oport"
    auth_ratios+=("$(awk -v a="$bearer_rate" -v b="$last_rate" 'BEGIN { printf "%.0f", 100 * a / b }')")
  done
  stop_pid "$open_pid"
fi

# start_extra_server PORT LOGFILE BINARY ENV... -- ARGS...: one more serve process on the run's
# data, for the comparisons below.
start_extra_server() {
  local port="$1" log="$2" bin="$3"; shift 3
  local -a extra_env=()
  while [ "$1" != -- ]; do extra_env+=("$1"); shift; done
  shift
  env -u DATABASE_URL -u REDIS_URL "${env_args[@]}" SECRET_KEY="$bench_secret" "${extra_env[@]}" \
    "$bin" serve --host 127.0.0.1 --port "$port" --threads "$threads" --workers "$workers" \
    --data-dir "$work/data" "${auth_args[@]}" "${common_args[@]}" "$@" >"$log" 2>&1 &
  server_pids+=("$!")
  extra_pid="$!"
  wait_http "http://127.0.0.1:$port/health"
  curl -sf -o /dev/null "${curl_auth[@]}" "http://127.0.0.1:$port/api/v1/notes/$BENCH_NOTE_ID/"
}
# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# run_wrk_cpu LABEL PID PORT [SCENARIO]: run_wrk (retrieve unless named), and sets last_cpu_us to
# the server's CPU microseconds per request. On a shared machine wall-clock req/s drift with the
# neighbours' load; the CPU a server spends per answer does much less.
run_wrk_cpu() {
  local before after requests
  before="$(cpu_ticks "$2")"
  run_wrk "$1" "${4:-retrieve}" "$3"
  after="$(cpu_ticks "$2")"
  requests="$(awk -v r="$last_rate" -v d="${duration%s}" 'BEGIN { print r * d }')"
  last_cpu_us="$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "%.2f", 1e6 * t / hz / n }')"
  echo "  $1: $last_cpu_us us CPU per request" >&2
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

access_ratios=() baseline_ratios=() scrape_ms=() access_cpu=() baseline_cpu=()
if ((compare_access_log > 0)); then
  aport="$(free_port)"
  start_extra_server "$aport" "$results/server-access-log.log" "$binary" LOG_LEVEL=info \
    TRANSNOTES_LOG_FORMAT=json -- --access-log on
  access_pid="$extra_pid"
  if [ -n "$baseline" ]; then
    bport="$(free_port)"
    start_extra_server "$bport" "$results/server-baseline.log" "$baseline" LOG_LEVEL=warn --
    baseline_pid="$extra_pid"
  fi
  main_pid="${server_pids[0]}"
  # Each server is scraped every 0.2 s while it is measured (the same small extra work for all).
  scrape_during() {  # PORT
    local end=$((SECONDS + ${duration%s}))
    while ((SECONDS < end)); do
      curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1/metrics"
      sleep 0.2
    done
  }
  for ((pair = 1; pair <= compare_access_log; pair++)); do
    scrape_during "${ports[0]}" >/dev/null & scraper="$!"
    run_wrk_cpu "retrieve quiet #$pair" "$main_pid" "${ports[0]}"
    wait "$scraper" || true
    quiet_rate="$last_rate" quiet_cpu="$last_cpu_us"
    scrape_during "$aport" >>"$results/scrape-times.txt" & scraper="$!"
    run_wrk_cpu "retrieve access log #$pair" "$access_pid" "$aport"
    wait "$scraper" || true
    access_ratios+=("$(awk -v a="$last_rate" -v b="$quiet_rate" 'BEGIN { printf "%.1f", 100 * a / b }')")
    access_cpu+=("$(awk -v a="$last_cpu_us" -v b="$quiet_cpu" 'BEGIN { printf "%.1f", 100 * a / b }')")
    if [ -n "$baseline" ]; then
      scrape_during "$bport" >/dev/null & scraper="$!"
      run_wrk_cpu "retrieve baseline #$pair" "$baseline_pid" "$bport"
      wait "$scraper" || true
      baseline_ratios+=("$(awk -v a="$quiet_rate" -v b="$last_rate" 'BEGIN { printf "%.1f", 100 * a / b }')")
      baseline_cpu+=("$(awk -v a="$quiet_cpu" -v b="$last_cpu_us" 'BEGIN { printf "%.1f", 100 * a / b }')")
    fi
  done
  mapfile -t scrape_ms < <(awk '{ printf "%.2f\n", 1000 * $1 }' "$results/scrape-times.txt")
  access_lines="$(grep -c '"message":"request"' "$results/server-access-log.log" || true)"
fi

# --- SQLite durability: synchronous FULL vs NORMAL, with and without group commit -------------
sync_names=() sync_pids=() sync_ports=()
declare -A sync_rate=() sync_cpu=() fsync_line=()
if ((compare_sync > 0)); then
  add_sync_variant() {  # NAME BINARY SERVE-ARGS...
    local name="$1" bin="$2" port
    shift 2
    port="$(free_port)"
    start_extra_server "$port" "$results/server-sync-${name// /_}.log" "$bin" LOG_LEVEL=warn -- "$@"
    sync_names+=("$name") sync_pids+=("$extra_pid") sync_ports+=("$port")
  }
  add_sync_variant "full" "$binary" --sqlite-sync full --db-write-batch 64
  add_sync_variant "normal" "$binary" --sqlite-sync normal --db-write-batch 64
  add_sync_variant "full unbatched" "$binary" --sqlite-sync full --db-write-batch 1
  add_sync_variant "normal unbatched" "$binary" --sqlite-sync normal --db-write-batch 1
  [ -n "$baseline" ] && add_sync_variant "baseline" "$baseline"
  for ((pair = 1; pair <= compare_sync; pair++)); do
    for s in create patch; do
      for i in "${!sync_names[@]}"; do
        name="${sync_names[$i]}"
        run_wrk_cpu "$s $name #$pair" "${sync_pids[$i]}" "${sync_ports[$i]}" "$s"
        sync_rate["$s/$name"]+="$last_rate " sync_cpu["$s/$name"]+="$last_cpu_us "
      done
    done
  done
  if [ -n "$count_fsyncs" ]; then
    for i in "${!sync_names[@]}"; do
      name="${sync_names[$i]}" trace="$results/strace-${sync_names[$i]// /_}.txt"
      strace -f -c -e trace=fsync,fdatasync -o "$trace" -p "${sync_pids[$i]}" 2>/dev/null &
      strace_pid="$!"
      sleep 1  # attached to every thread before the load starts
      saved_duration="$duration" duration="$count_fsyncs"
      run_wrk "create $name (strace)" create "${sync_ports[$i]}"
      duration="$saved_duration"
      kill -INT "$strace_pid" 2>/dev/null || true
      wait "$strace_pid" || true
      created="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' "$results/create_${name// /_}_(strace).0.txt")"
      syncs="$(awk '$NF == "fsync" || $NF == "fdatasync" { n += $4 } END { print n + 0 }' "$trace")"
      fsync_line["$name"]="$(awk -v s="$syncs" -v c="$created" \
        'BEGIN { printf "%d fsyncs / %d creates = %.3f per create", s, c, c ? s / c : 0 }')"
    done
  fi
fi

ratios=()
if ((nginx)); then
  nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
  [ -x "$nginx_bin" ] || { echo "run.sh: nginx not installed (apt-get install nginx-light)" >&2; exit 1; }
  mkdir -p "$work/nginx"
  nport="$(free_port)"
  # The body is the real note JSON, so both servers send the same bytes.
  body="$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" <<<"$load_note")"
  cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nport;
    location / {
      default_type application/json;
      return 200 '$body';
    }
  }
}
EOF
  "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' \
    >"$results/nginx.log" 2>&1 &
  nginx_pid="$!"
  wait_http "http://127.0.0.1:$nport/api/v1/notes/1/"
  # On a shared machine the load drifts between runs: with --pairs N > 1, alternate the two
  # servers N times (each idle while the other is measured) and report the median ratio.
  for ((pair = 1; pair <= pairs; pair++)); do
    if ((pairs > 1)); then
      run_wrk "retrieve #$pair" retrieve "${ports[@]}"
      app_retrieve="$last_rate"
      run_wrk "nginx fixed JSON #$pair" retrieve "$nport"
    else
      run_wrk "nginx fixed JSON" retrieve "$nport"
    fi
    ratios+=("$(awk -v a="${app_retrieve:-0}" -v b="$last_rate" 'BEGIN { printf "%.0f", 100 * a / b }')")
  done
  stop_pid "$nginx_pid"
  nginx_pid=""
fi
stop_servers

# --- report ----------------------------------------------------------------------------------
echo
echo "mode=$mode procs=$procs threads=$threads workers=$workers duration=$duration" \
  "connections=$connections wrk-threads=$wrk_threads seed=$seed"
echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')  load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-24s %10s %9s %9s %7s\n' scenario "req/s" "p50 ms" "p99 ms" errors
printf '%s\n' "${table[@]}"
((${#cpu_lines[@]})) && printf '%s\n' "${cpu_lines[@]}"
if ((${#ratios[@]})); then
  echo "retrieve / nginx: $(printf '%s%% ' "${ratios[@]}")(median $(printf '%s\n' "${ratios[@]}" |
    sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')%)"
fi
if ((${#auth_ratios[@]})); then
  echo "retrieve bearer / open: $(printf '%s%% ' "${auth_ratios[@]}")(median $(printf '%s\n' \
    "${auth_ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')%)"
fi
if ((${#access_ratios[@]})); then
  echo "retrieve with JSON access log / quiet: $(printf '%s%% ' "${access_ratios[@]}")(median" \
    "$(median "${access_ratios[@]}")%; $access_lines access lines written)"
  echo "  server CPU per request, access log / quiet: $(printf '%s%% ' "${access_cpu[@]}")(median" \
    "$(median "${access_cpu[@]}")%)"
  echo "/metrics scrape under load: ${#scrape_ms[@]} scrapes, p50 $(median "${scrape_ms[@]}") ms," \
    "max $(printf '%s\n' "${scrape_ms[@]}" | sort -n | tail -n1) ms"
fi
if ((${#baseline_ratios[@]})); then
  echo "retrieve this binary / baseline ($baseline): $(printf '%s%% ' "${baseline_ratios[@]}")" \
    "(median $(median "${baseline_ratios[@]}")%)"
  echo "  server CPU per request, this / baseline: $(printf '%s%% ' "${baseline_cpu[@]}")(median" \
    "$(median "${baseline_cpu[@]}")%)"
fi
if ((compare_sync > 0)); then
  echo "SQLite sync, alternated $compare_sync times (median req/s; median server CPU us per request):"
  for s in create patch; do
    for name in "${sync_names[@]}"; do
      # shellcheck disable=SC2086  # the lists are space-separated numbers
      printf '  %-6s %-17s %8s req/s  %7s us CPU/req   (%s)\n' "$s" "$name" \
        "$(median ${sync_rate["$s/$name"]})" "$(median ${sync_cpu["$s/$name"]})" \
        "${sync_rate["$s/$name"]% }"
    done
  done
  for name in "${sync_names[@]}"; do
    [ -n "${fsync_line[$name]:-}" ] && printf '  fsyncs, %-17s %s\n' "$name" "${fsync_line[$name]}"
  done
fi
[ -n "$dispatch_line" ] && echo "$dispatch_line"
echo "raw outputs: $results"
