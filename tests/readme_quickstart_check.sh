#!/usr/bin/env bash
# Runs README.md's quick-start block (between <!-- quickstart --> and <!-- /quickstart -->)
# against a fresh `transnotes serve` on a free port, so the documented register -> token ->
# create -> translate sequence keeps working. Fails when a step fails or the note never gets
# its Spanish translation.
#
# Usage: tests/readme_quickstart_check.sh TRANSNOTES_BINARY [SOURCE_DIR]
set -euo pipefail

BINARY="${1:?usage: readme_quickstart_check.sh TRANSNOTES_BINARY [SOURCE_DIR]}"
SOURCE_DIR="${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
work="$(mktemp -d /tmp/transnotes-readme.XXXXXX)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

block="$(sed -n '/^<!-- quickstart -->$/,/^<!-- \/quickstart -->$/p' "$SOURCE_DIR/README.md" |
  sed -e '1,/^```sh$/d' -e '/^```$/,$d')"
[ -n "$block" ] || { echo "readme_quickstart_check: no quickstart block in README.md" >&2; exit 1; }

"$BINARY" serve --host 127.0.0.1 --port 0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
server_pid=$!
port=""
for _ in $(seq 300); do
  port="$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/out")"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "readme_quickstart_check: the server did not start" >&2; exit 1; }

# The block as documented, on this server's port, then a wait for the worker's result (the
# block's own `sleep 1` may be too short on a loaded machine).
script="${block//127.0.0.1:8000/127.0.0.1:$port}"
script+='
for _ in $(seq 300); do
  curl -s "$API/notes/1/" -H "Authorization: Bearer $TOKEN" | grep -q "\"translated_text\":\"Hola Mundo.\"" && exit 0
  sleep 0.1
done
echo "readme_quickstart_check: the note was not translated" >&2
exit 1'
if ! output="$(bash -euo pipefail -c "$script" 2>&1)"; then
  echo "readme_quickstart_check: the quick start failed:" >&2
  echo "$output" >&2
  cat "$work/err" >&2
  exit 1
fi
for expected in '"username":"ada"' '"title":"Greeting"' '"status":"Translation in progress"'; do
  if [[ "$output" != *"$expected"* ]]; then
    echo "readme_quickstart_check: the output lacks $expected:" >&2
    echo "$output" >&2
    exit 1
  fi
done
echo "readme_quickstart_check: OK"
