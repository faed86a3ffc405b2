#!/usr/bin/env bash
# Starts (or stops) private PostgreSQL and Redis instances on loopback for the test suite.
# Never touches system services. Usage:
#   eval "$(scripts/services.sh start)"   # exports TRANSNOTES_TEST_DATABASE_URL / _REDIS_URL
#   scripts/services.sh stop
# State lives in $TRANSNOTES_SERVICES_DIR (default /tmp/transnotes-services).
set -euo pipefail

DIR="${TRANSNOTES_SERVICES_DIR:-/tmp/transnotes-services}"
PG_PORT="${TRANSNOTES_TEST_PG_PORT:-55432}"
REDIS_PORT="${TRANSNOTES_TEST_REDIS_PORT:-56379}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  mkdir -p "$DIR"
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
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
