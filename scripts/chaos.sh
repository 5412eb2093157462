#!/usr/bin/env bash
# Chaos: signed webhooks posted through the release receiver while, at random instants, the
# workers and the receiver are killed -9 and restarted, Redis is killed and restarted (AOF on),
# and Postgres refuses the workers' connections for a minute. Then: is every webhook that was
# answered 200 stored exactly once?
#
#   scripts/chaos.sh        (or `just chaos`; not part of `just test`)
#
# - The load is `mailtrail-bench --chaos-send`: CHAOS_N webhooks (1% signed bodies that name no
#   event, 2% events without backer_id, the rest good events, three per message), paced at
#   CHAOS_RATE per second. Every answer other than 200, and every broken connection, is retried
#   with backoff, as Mailgun retries (in seconds rather than hours).
# - The services run under a small supervisor each (restarted when they exit, like systemd's
#   Restart=always): one receiver, two workers (w1, w2), and a redis-server of this run's own
#   (appendonly yes, appendfsync always, noeviction) on a free port with its data in a temp dir.
#   The workers reach Postgres through `mailtrail-bench --proxy`, which refuses connections on
#   SIGUSR1 and accepts again on SIGUSR2; the shared Postgres itself is never stopped. The
#   database is one of this run's own.
# - Chaos, at random instants while the load runs: CHAOS_WORKER_KILLS kill -9 of a worker (3 at
#   most by default: a fourth death holding the same batch would rightly count it as poison),
#   CHAOS_RECEIVER_KILLS kill -9 of the receiver, CHAOS_REDIS_RESTARTS kill -9 of redis-server,
#   and one Postgres refusal of CHAOS_PG_OUTAGE_SECS.
# - At the end, once the queue is drained: `mailtrail-bench --chaos-check` compares email_events,
#   the sent_emails counters, the dead list and the skip counts with what was sent, prints the
#   figures and fails on any difference. The summary is also in target/chaos/summary.txt.
#
# Loopback only, bounded in time (CHAOS_TIMEOUT_SECS). Knobs (environment): CHAOS_N (100000),
# CHAOS_RATE (1000), CHAOS_CONNECTIONS (16), CHAOS_WORKER_KILLS (3), CHAOS_RECEIVER_KILLS (2),
# CHAOS_REDIS_RESTARTS (2), CHAOS_PG_OUTAGE_SECS (60), CHAOS_LEASE_TTL_SECS (10), CHAOS_SEED
# (random), CHAOS_TIMEOUT_SECS (1800), MAILTRAIL_TEST_DATABASE_URL (admin URL of the Postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${CHAOS_N:-100000}
RATE=${CHAOS_RATE:-1000}
CONNECTIONS=${CHAOS_CONNECTIONS:-16}
WORKER_KILLS=${CHAOS_WORKER_KILLS:-3}
RECEIVER_KILLS=${CHAOS_RECEIVER_KILLS:-2}
REDIS_RESTARTS=${CHAOS_REDIS_RESTARTS:-2}
PG_OUTAGE_SECS=${CHAOS_PG_OUTAGE_SECS:-60}
LEASE_TTL_SECS=${CHAOS_LEASE_TTL_SECS:-10}
SEED=${CHAOS_SEED:-$RANDOM}
TIMEOUT_SECS=${CHAOS_TIMEOUT_SECS:-1800}
ADMIN_URL=${MAILTRAIL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_HOSTPORT=$(sed -E 's|^[a-z]+://([^@/]*@)?([^/?]*).*|\2|' <<<"$ADMIN_URL")
SIGNING_KEY=chaos-signing-key
PREFIX="chaos:"
# The queue's key names start with the prefix's hash tag (crates/mailtrail-queue/src/keys.rs).
KEYS="{chaos}:"

RELEASE_DIR="${CARGO_TARGET_DIR:-target}/release"
OUT_DIR=target/chaos
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-chaos.XXXXXX")
DB_NAME="mailtrail_chaos_$$"
DATABASE_URL="${ADMIN_URL%/*}/$DB_NAME"
SUPERVISORS="" SENDER_PID="" CHAOS_PID="" WATCHDOG_PID=""
START_MS=$(date +%s%3N)

log() { printf '%s\n' "$*" | tee -a "$WORK/events.log" >&2; }
at() { printf 't+%5.1fs' "$(awk -v now="$(date +%s%3N)" -v start="$START_MS" 'BEGIN {print (now - start) / 1000}')"; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cleanup() {
  local status=$?
  touch "$WORK/stop"
  [ -z "$CHAOS_PID" ] || kill "$CHAOS_PID" 2>/dev/null || true
  [ -z "$SENDER_PID" ] || kill "$SENDER_PID" 2>/dev/null || true
  # Workers first, so they release their leases while Redis is still there.
  for name in w1 w2; do
    [ -f "$WORK/$name.pid" ] && kill -TERM "$(cat "$WORK/$name.pid")" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    kill -0 "$(cat "$WORK/w1.pid" 2>/dev/null)" 2>/dev/null \
      || kill -0 "$(cat "$WORK/w2.pid" 2>/dev/null)" 2>/dev/null || break
    sleep 0.1
  done
  for name in receiver proxy redis; do
    [ -f "$WORK/$name.pid" ] && kill -TERM "$(cat "$WORK/$name.pid")" 2>/dev/null || true
  done
  for pid in $SUPERVISORS; do wait "$pid" 2>/dev/null || true; done
  # The logs of the last run stay for a look (services, sender, check), whatever happened.
  rm -rf "$OUT_DIR/last-run" && mkdir -p "$OUT_DIR/last-run"
  cp "$WORK"/*.log "$WORK"/*.txt "$OUT_DIR/last-run/" 2>/dev/null || true
  psql "$ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  [ -z "$WATCHDOG_PID" ] || kill "$WATCHDOG_PID" 2>/dev/null || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The whole run is bounded: past the limit the script stops itself (and cleans up).
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$TIMEOUT_SECS" & sleeper=$!
  wait "$sleeper" && echo "chaos: over ${TIMEOUT_SECS}s, stopping" >&2 && kill -TERM $$
) >/dev/null 2>&1 &
WATCHDOG_PID=$!

# Runs a command again whenever it exits, until $WORK/stop exists; its pid is in $WORK/<name>.pid.
supervise() {
  local name=$1; shift
  (
    while [ ! -f "$WORK/stop" ]; do
      "$@" >>"$WORK/$name.log" 2>&1 &
      echo $! >"$WORK/$name.pid"
      wait $! || true
      [ -f "$WORK/stop" ] || sleep 0.2
    done
  ) 2>>"$WORK/$name.log" &
  SUPERVISORS="$SUPERVISORS $!"
}
pid_of() { cat "$WORK/$1.pid"; }

log "== building (cargo build --release)"
cargo build --release --quiet -p mailtrail-receiver -p mailtrail-worker -p mailtrail-cli -p mailtrail-bench

REDIS_PORT=$(free_port) RECEIVER_PORT=$(free_port) PROXY_PORT=$(free_port)
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
PROXIED_URL="${DATABASE_URL/$PG_HOSTPORT/127.0.0.1:$PROXY_PORT}"
[ "$PROXIED_URL" != "$DATABASE_URL" ] || { echo "cannot route $ADMIN_URL through the proxy" >&2; exit 1; }
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

mkdir -p "$WORK/redis"
supervise redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
  --appendonly yes --appendfsync always --maxmemory-policy noeviction --save ''
for _ in $(seq 1 100); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
psql "$ADMIN_URL" -qAtc "CREATE DATABASE $DB_NAME" >/dev/null
DATABASE_URL="$DATABASE_URL" "$RELEASE_DIR"/mailtrail migrate >/dev/null
supervise proxy "$RELEASE_DIR"/mailtrail-bench --proxy "127.0.0.1:$PROXY_PORT" --proxy-target "$PG_HOSTPORT"
supervise receiver env REDIS_URL="$REDIS_URL" MAILTRAIL_SIGNING_KEYS="$SIGNING_KEY" \
  MAILTRAIL_BIND="127.0.0.1:$RECEIVER_PORT" MAILTRAIL_REDIS_PREFIX="$PREFIX" RUST_LOG=warn \
  "$RELEASE_DIR"/mailtrail-receiver
for worker in w1 w2; do
  supervise "$worker" env DATABASE_URL="$PROXIED_URL" REDIS_URL="$REDIS_URL" \
    MAILTRAIL_REDIS_PREFIX="$PREFIX" MAILTRAIL_WORKER_ID="$worker" MAILTRAIL_MIGRATE=false \
    MAILTRAIL_LEASE_TTL_SECS="$LEASE_TTL_SECS" MAILTRAIL_METRICS_BIND= RUST_LOG=info \
    "$RELEASE_DIR"/mailtrail-worker
done
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$RECEIVER_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
log "== $(date -u '+%Y-%m-%d %H:%M UTC'): $N webhooks at $RATE/s over $CONNECTIONS connections; 2 workers (lease ${LEASE_TTL_SECS}s), 1 receiver, redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') (AOF always), seed $SEED"

# ---------------------------------------------------------------------------------------------
START_MS=$(date +%s%3N)
env REDIS_URL="$REDIS_URL" MAILTRAIL_SIGNING_KEYS="$SIGNING_KEY" MAILTRAIL_REDIS_PREFIX="$PREFIX" \
  MAILTRAIL_RECEIVER_URL="http://127.0.0.1:$RECEIVER_PORT" \
  "$RELEASE_DIR"/mailtrail-bench --chaos-send "$N" --plan "$WORK/plan.json" --rate "$RATE" \
  --connections "$CONNECTIONS" >"$WORK/send.txt" 2>&1 &
SENDER_PID=$!

# The chaos: every action at a random instant while the load runs, in time order.
chaos() {
  local span=$(( N / RATE )) actions=() instant action
  (( span > 20 )) || span=20
  for i in $(seq 1 "$WORKER_KILLS"); do actions+=("kill-worker-w$(( i % 2 + 1 ))"); done
  for _ in $(seq 1 "$RECEIVER_KILLS"); do actions+=(kill-receiver); done
  for _ in $(seq 1 "$REDIS_RESTARTS"); do actions+=(restart-redis); done
  actions+=(refuse-postgres)
  RANDOM=$SEED
  for action in "${actions[@]}"; do
    echo "$(( 3000 + (RANDOM * 32768 + RANDOM) % ((span - 6) * 1000) )) $action"
  done | sort -n >"$WORK/schedule.txt"
  while read -r instant action; do
    local now=$(( $(date +%s%3N) - START_MS ))
    (( instant > now )) && sleep "$(awk -v ms="$(( instant - now ))" 'BEGIN {print ms / 1000}')"
    case $action in
      kill-worker-*)
        log "$(at) kill -9 worker ${action#kill-worker-} (restarted by its supervisor)"
        kill -KILL "$(pid_of "${action#kill-worker-}")" 2>/dev/null || true ;;
      kill-receiver)
        log "$(at) kill -9 receiver (restarted by its supervisor)"
        kill -KILL "$(pid_of receiver)" 2>/dev/null || true ;;
      restart-redis)
        log "$(at) kill -9 redis-server (restarted by its supervisor, AOF replayed)"
        kill -KILL "$(pid_of redis)" 2>/dev/null || true ;;
      refuse-postgres)
        log "$(at) Postgres refuses the workers' connections for ${PG_OUTAGE_SECS}s"
        kill -USR1 "$(pid_of proxy)"
        ( sleep "$PG_OUTAGE_SECS"; kill -USR2 "$(pid_of proxy)"; log "$(at) Postgres accepts connections again" ) & ;;
    esac
  done <"$WORK/schedule.txt"
  wait
}
chaos &
CHAOS_PID=$!

wait "$SENDER_PID" || { cat "$WORK/send.txt" >&2; exit 1; }
SENDER_PID=""
log "$(at) the sender is done"
wait "$CHAOS_PID" || true
CHAOS_PID=""
kill -USR2 "$(pid_of proxy)" 2>/dev/null || true

# Drained: backlog and every processing list empty, three times in a row, a second apart.
drained=0
for _ in $(seq 1 "${CHAOS_DRAIN_SECS:-600}"); do
  backlog=$(rcli llen "${KEYS}events" 2>/dev/null || echo x)
  in_flight=$(rcli --scan --pattern "${KEYS}processing:*" 2>/dev/null | wc -l)
  if [ "$backlog" = 0 ] && [ "$in_flight" = 0 ]; then drained=$(( drained + 1 )); else drained=0; fi
  [ "$drained" -ge 3 ] && break
  sleep 1
done
[ "$drained" -ge 3 ] || { log "$(at) the queue did not drain: backlog $backlog, $in_flight processing lists"; exit 1; }
log "$(at) drained"
touch "$WORK/stop"
for worker in w1 w2; do kill -TERM "$(pid_of "$worker")" 2>/dev/null || true; done
sleep 1

# ---------------------------------------------------------------------------------------------
SUMMARY="$OUT_DIR/summary.txt"
count_in_logs() { cat "$WORK"/w1.log "$WORK"/w2.log 2>/dev/null | grep -c "$1" || true; }
check_status=0
env DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" MAILTRAIL_REDIS_PREFIX="$PREFIX" \
  "$RELEASE_DIR"/mailtrail-bench --chaos-check --plan "$WORK/plan.json" >"$WORK/check.txt" 2>&1 \
  || check_status=$?
{
  echo "chaos run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "settings: N=$N webhooks at $RATE/s, $CONNECTIONS connections, 2 workers (lease ${LEASE_TTL_SECS}s), seed $SEED"
  echo
  echo "what happened:"
  sed 's/^/  /' "$WORK/events.log" | grep -E 't\+' || true
  echo
  echo "sender:"
  sed 's/^/  /' "$WORK/send.txt"
  echo
  echo "workers' logs: $(count_in_logs 'reaped a dead worker') reaps, $(count_in_logs 'requeued envelopes left in flight') start-up recoveries, $(count_in_logs 'the lease lapsed') lease lapses, $(count_in_logs 'had taken effect; not repeated') settles repeated after a lost reply"
  echo
  echo "check (mailtrail-bench --chaos-check, exit status $check_status):"
  sed 's/^/  /' "$WORK/check.txt"
} >"$SUMMARY"
cat "$SUMMARY"
exit "$check_status"
