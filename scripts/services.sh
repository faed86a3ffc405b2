#!/usr/bin/env bash
# Starts (or stops) private PostgreSQL and Redis instances on loopback for the test suite.
# Never touches system services. Usage:
#   eval "$(scripts/services.sh start)"   # exports TRANSNOTES_TEST_DATABASE_URL / _REDIS_URL
#   scripts/services.sh stop
# State lives in $TRANSNOTES_SERVICES_DIR (default /tmp/transnotes-services).
set -euo pipefail

DIR="${TRANSNOTES_SERVICES_DIR:-/tmp/transnotes-services}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"

# True when nothing listens on 127.0.0.1:$1.
port_free() {
  python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}
any_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Ports are chosen once per state directory and remembered there, so `stop` (and a second
# `start`) find the same instances. The defaults are used when free; when another checkout's
# instances hold them, this directory gets free ports of its own.
if [ -f "$DIR/ports" ]; then
  # shellcheck disable=SC1091
  . "$DIR/ports"
fi
PG_PORT="${TRANSNOTES_TEST_PG_PORT:-${PG_PORT:-}}"
REDIS_PORT="${TRANSNOTES_TEST_REDIS_PORT:-${REDIS_PORT:-}}"

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  mkdir -p "$DIR"
  if [ -z "$PG_PORT" ]; then
    if [ -f "$DIR/pg/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg" status >/dev/null 2>&1; then
      PG_PORT="$(sed -n 4p "$DIR/pg/postmaster.pid")"  # already running from this directory
    else
      PG_PORT=55432
      port_free "$PG_PORT" || PG_PORT="$(any_free_port)"
    fi
  fi
  if [ -z "$REDIS_PORT" ]; then
    REDIS_PORT=56379
    if ! port_free "$REDIS_PORT" &&
      [ "$(redis-cli -p "$REDIS_PORT" config get dir 2>/dev/null | sed -n 2p)" != "$DIR" ]; then
      REDIS_PORT="$(any_free_port)"  # another checkout's Redis holds the default
    fi
  fi
  printf 'PG_PORT=%s\nREDIS_PORT=%s\n' "$PG_PORT" "$REDIS_PORT" >"$DIR/ports"
  # PostgreSQL refuses to run as root; its data directory belongs to the postgres user.
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$DIR" 2>/dev/null || true; fi
  if [ -z "$PG_BIN" ]; then echo "services: PostgreSQL not installed (run scripts/install-deps.sh)" >&2; exit 1; fi
  if ! as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg" status >/dev/null 2>&1; then
    if [ ! -f "$DIR/pg/PG_VERSION" ]; then
      as_postgres "$PG_BIN/initdb" -D "$DIR/pg" -U postgres -A trust -E UTF8 --no-locale >"$DIR/initdb.log" 2>&1
    fi
    as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg.log" -w -t 30 \
      -o "-p $PG_PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null
  fi
  as_postgres "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='transnotes_test'" | grep -q 1 ||
    as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres transnotes_test
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "export TRANSNOTES_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/transnotes_test"
  echo "export TRANSNOTES_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
  echo "export TRANSNOTES_TEST_PG_BIN=$PG_BIN"
  echo "export TRANSNOTES_SERVICES_DIR=$DIR"
}

stop() {
  if [ -n "$PG_BIN" ] && [ -d "$DIR/pg" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  # Only the Redis this directory started (its pidfile), never another checkout's.
  if [ -f "$DIR/redis.pid" ] && [ -n "$REDIS_PORT" ]; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$DIR/redis.pid"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
