#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer.
#
#   scripts/services.sh ensure   reuse what listens; else start the machine's installed
#                                servers; else `docker compose up -d`; else throwaway instances
#                                under .dev/ (initdb/pg_ctl and redis-server); else explain.
#   scripts/services.sh stop     stop the throwaway instances under .dev/ (never anything else).
#
# Prints nothing but progress; exits non-zero with a clear message when nothing works.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1 REDIS_HOST=127.0.0.1
# Overridable to try the fallbacks without touching the servers on the standard ports.
PG_PORT="${MAILTRAIL_DEV_PG_PORT:-5432}" REDIS_PORT="${MAILTRAIL_DEV_REDIS_PORT:-6379}"
DEV_DIR="$PWD/.dev"

listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

postgres_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    listening "$PG_HOST" "$PG_PORT"
  fi
}

redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
  else
    listening "$REDIS_HOST" "$REDIS_PORT"
  fi
}

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 60); do
    if $check; then return 0; fi
    sleep 0.5
  done
  echo "error: $what did not come up" >&2
  return 1
}

start_installed_postgres() {
  # A Debian cluster that is installed but stopped (as on a rebooted CI machine).
  command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] || return 1
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  [ -n "$version" ] || return 1
  echo "starting the installed PostgreSQL $version cluster"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  wait_for PostgreSQL postgres_up
}

start_installed_redis() {
  command -v redis-server >/dev/null 2>&1 || return 1
  mkdir -p "$DEV_DIR/redis"
  echo "starting redis-server (AOF on, noeviction)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --dir "$DEV_DIR/redis" --logfile "$DEV_DIR/redis/redis.log" \
    --pidfile "$DEV_DIR/redis/redis.pid"
  wait_for Redis redis_up
}

docker_works() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
    && docker compose version >/dev/null 2>&1
}

start_throwaway_postgres() {
  local bin
  bin=$(dirname "$(command -v pg_ctl 2>/dev/null || command -v initdb 2>/dev/null || echo /nonexistent/x)")
  [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] || return 1
  local data="$DEV_DIR/postgres"
  if [ ! -d "$data" ]; then
    echo "creating a throwaway PostgreSQL cluster in $data"
    mkdir -p "$DEV_DIR"
    # initdb refuses to run as root; run it as the postgres user when we are root.
    if [ "$(id -u)" = 0 ]; then
      id postgres >/dev/null 2>&1 || return 1
      install -d -o postgres "$data"
      su postgres -s /bin/sh -c "'$bin/initdb' -D '$data' -U postgres --auth=trust >/dev/null"
    else
      "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    fi
  fi
  echo "starting the throwaway PostgreSQL"
  local start="'$bin/pg_ctl' -D '$data' -l '$data/log' -o '-h $PG_HOST -p $PG_PORT -k /tmp' -w start"
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$start" >/dev/null; else sh -c "$start" >/dev/null; fi
  wait_for PostgreSQL postgres_up
}

ensure() {
  if ! postgres_up; then
    start_installed_postgres || true
  fi
  if ! redis_up; then
    start_installed_redis || true
  fi
  if ! postgres_up || ! redis_up; then
    if docker_works; then
      echo "starting Postgres and Redis with docker compose"
      docker compose up -d --wait
    fi
  fi
  if ! postgres_up; then
    start_throwaway_postgres || true
  fi
  if ! postgres_up || ! redis_up; then
    cat >&2 <<'MSG'
error: mailtrail needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.
Install one of:
  - Docker with the compose plugin (then `docker compose up -d` uses docker-compose.yml), or
  - PostgreSQL 15+ (initdb, pg_ctl) and Redis 7 (redis-server), e.g.
      apt-get install postgresql redis-server      # Debian/Ubuntu
      brew install postgresql@16 redis             # macOS
MSG
    exit 1
  fi
  echo "Postgres and Redis are up"
}

stop() {
  if [ -f "$DEV_DIR/postgres/postmaster.pid" ]; then
    local bin
    bin=$(dirname "$(command -v pg_ctl)")
    if [ "$(id -u)" = 0 ]; then
      su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$DEV_DIR/postgres' -m fast stop" || true
    else
      "$bin/pg_ctl" -D "$DEV_DIR/postgres" -m fast stop || true
    fi
  fi
  if [ -f "$DEV_DIR/redis/redis.pid" ]; then
    kill "$(cat "$DEV_DIR/redis/redis.pid")" 2>/dev/null || true
  fi
}

case "${1:-ensure}" in
  ensure) ensure ;;
  stop) stop ;;
  *) echo "usage: $0 ensure|stop" >&2; exit 2 ;;
esac
