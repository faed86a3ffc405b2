#!/usr/bin/env bash
# Translate dispatch latency: how long a 202-accepted translation waits before a worker starts it.
# Usage: bench/http/dispatch.sh BASE_URL [JOBS]   (e.g. http://127.0.0.1:8000 200)
#
# Creates one English note, then JOBS times: POST /notes/{id}/translate/ {"target_language":"es"},
# and polls the job until it has finished, so every job meets an idle worker (the figure is the
# dispatch path, not queueing behind earlier jobs). Uses the server's own timestamps:
# started_at - created_at. Prints one line:
#   BENCH scenario=dispatch jobs=N p50_ms=.. p90_ms=.. max_ms=.. unstarted=K
set -euo pipefail

BASE="${1:?usage: dispatch.sh BASE_URL [JOBS]}"
JOBS="${2:-200}"
POLL_LIMIT_S="${DISPATCH_POLL_LIMIT_S:-30}"
# With auth on, run.sh exports the bench user's access token.
auth=()
[ -n "${BENCH_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $BENCH_TOKEN")

note_id=$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' \
  -d '{"title":"dispatch","original_text":"Good morning. How are you?","original_language":"en"}' \
  "$BASE/api/v1/notes/" | jq -r .id)

# Seconds since midnight UTC of an ISO timestamp such as 2026-11-29T17:28:47.123456Z.
to_seconds() { awk -F'[T:Z]' '{ printf "%.6f\n", $2 * 3600 + $3 * 60 + $4 }' <<<"$1"; }

samples=()
unstarted=0
for ((i = 0; i < JOBS; i++)); do
  job_id=$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' -d '{"target_language":"es"}' \
    "$BASE/api/v1/notes/$note_id/translate/" | jq -r .translation.id)
  deadline=$((SECONDS + POLL_LIMIT_S))
  job=""
  while ((SECONDS < deadline)); do
    job=$(curl -sf "${auth[@]}" "$BASE/api/v1/translations/$job_id/")
    finished=$(jq -r .finished_at <<<"$job")
    [ "$finished" != "null" ] && break
    sleep 0.005
  done
  started=$(jq -r .started_at <<<"$job")
  if [ "$started" = "null" ]; then
    unstarted=$((unstarted + 1))
    continue
  fi
  created=$(jq -r .created_at <<<"$job")
  samples+=("$(awk -v a="$(to_seconds "$created")" -v b="$(to_seconds "$started")" \
    'BEGIN { d = b - a; if (d < 0) d += 86400; printf "%.3f", d * 1000 }')")
done

if ((${#samples[@]} == 0)); then
  echo "BENCH scenario=dispatch jobs=$JOBS unstarted=$unstarted (no job started)"
  exit 1
fi
printf '%s\n' "${samples[@]}" | sort -g | awk -v jobs="$JOBS" -v unstarted="$unstarted" '
  { v[NR] = $1 }
  END {
    p50 = v[int((NR - 1) * 0.50) + 1]; p90 = v[int((NR - 1) * 0.90) + 1]
    printf "BENCH scenario=dispatch jobs=%d p50_ms=%.2f p90_ms=%.2f max_ms=%.2f unstarted=%d\n",
      jobs, p50, p90, v[NR], unstarted
  }'
