#!/usr/bin/env bash
# Benchmarks that prove the speed: each stage measured next to the ceiling of what it sits on.
#
#   scripts/bench.sh        (or `just bench`)
#
# 1. baselines: redis-benchmark LPUSH of a ~2 KB value (same Redis, -P 1, same concurrency as the
#    load generator), and the store's exact upsert statement issued directly (same events, same
#    batch size) on the same Postgres;
# 2. receiver: `mailtrail load` at full speed (N connections, fixed time) and at a fixed rate;
# 3. worker: a pre-filled backlog drained by the real release worker;
# 4. end to end: receiver and worker together under a sustained offered rate: backlog and lag;
# 5. a summary table (stdout and target/bench/summary.md).
#
# It runs a redis-server of its own (production settings: AOF, appendfsync always, noeviction)
# on a free port with its data in a temp dir, and a database of its own on the shared Postgres;
# both go away on exit, whatever happens. Loopback only, bounded in time (BENCH_TIMEOUT_SECS).
#
# Knobs (environment): BENCH_CONNECTIONS (32), BENCH_SECONDS (10), BENCH_RATE (2000),
# BENCH_FILL (200000), BENCH_BATCH (1000), BENCH_E2E_RATE (25000), BENCH_E2E_SECONDS (20),
# BENCH_HTTP_WORKERS (0 = one per core), BENCH_CRITERION (1 = also run the parse
# micro-benchmarks), MAILTRAIL_TEST_DATABASE_URL (admin URL of the Postgres to use).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${BENCH_CONNECTIONS:-32}
SECONDS_RUN=${BENCH_SECONDS:-10}
RATE=${BENCH_RATE:-2000}
FILL=${BENCH_FILL:-200000}
BATCH=${BENCH_BATCH:-1000}
E2E_RATE=${BENCH_E2E_RATE:-25000}
E2E_SECONDS=${BENCH_E2E_SECONDS:-20}
HTTP_WORKERS=${BENCH_HTTP_WORKERS:-0}
CRITERION=${BENCH_CRITERION:-1}
REDIS_REQUESTS=${BENCH_REDIS_REQUESTS:-400000}
TIMEOUT_SECS=${BENCH_TIMEOUT_SECS:-900}
ADMIN_URL=${MAILTRAIL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SIGNING_KEY=bench-signing-key
PREFIX="bench:"
WORKER_ID=bench-worker

OUT_DIR=target/bench
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-bench.XXXXXX")
DB_NAME="mailtrail_bench_$$"
DATABASE_URL="${ADMIN_URL%/*}/$DB_NAME"
REDIS_PID="" RECEIVER_PID="" WORKER_PID="" SAMPLER_PID="" WATCHDOG_PID=""

log() { printf '\n== %s\n' "$*" >&2; }

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  stop_pid "$SAMPLER_PID"
  stop_pid "$RECEIVER_PID"
  stop_pid "$WORKER_PID"
  stop_pid "$REDIS_PID"
  psql "$ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  [ -z "$WATCHDOG_PID" ] || kill "$WATCHDOG_PID" 2>/dev/null || true
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The whole run is bounded: past the limit the script stops itself (and cleans up).
# Its output goes nowhere, and stopping it stops its sleep, so no pipe is held open after exit.
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$TIMEOUT_SECS" & sleeper=$!
  wait "$sleeper" && echo "bench: over ${TIMEOUT_SECS}s, stopping" >&2 && kill -TERM $$
) >/dev/null 2>&1 &
WATCHDOG_PID=$!

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }
mailtrail() {
  env DATABASE_URL="$DATABASE_URL" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" \
    MAILTRAIL_REDIS_PREFIX="$PREFIX" MAILTRAIL_SIGNING_KEYS="$SIGNING_KEY" \
    MAILTRAIL_RECEIVER_URL="http://127.0.0.1:$RECEIVER_PORT" target/release/mailtrail "$@"
}

log "machine"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
CORES=$(nproc)
echo "cores: $CORES, cpu: $CPU_MODEL, load average before: $LOAD_BEFORE"

log "building (cargo build --release)"
cargo build --release --quiet -p mailtrail-receiver -p mailtrail-worker -p mailtrail-cli
RUSTC_VERSION=$(rustc --version)
REDIS_VERSION=$(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/')
PG_VERSION=$(psql "$ADMIN_URL" -qAtc 'SHOW server_version')

log "dedicated redis-server and database"
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
  --appendonly yes --appendfsync always --maxmemory-policy noeviction --save '' \
  --logfile "$WORK/redis.log" &
REDIS_PID=$!
for _ in $(seq 1 50); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
echo "redis-server $REDIS_VERSION on port $REDIS_PORT (appendonly yes, appendfsync always, noeviction), data in $WORK/redis"
psql "$ADMIN_URL" -qAtc "CREATE DATABASE $DB_NAME" >/dev/null
RECEIVER_PORT=$(free_port)
mailtrail migrate >/dev/null
echo "database $DB_NAME on PostgreSQL $PG_VERSION, migrated"
truncate_tables() { psql "$DATABASE_URL" -qAtc 'TRUNCATE email_events, sent_emails' >/dev/null; }

# ---------------------------------------------------------------------------------------------
log "baseline: redis-benchmark LPUSH, 2048-byte value, -c $CONNECTIONS -P 1, $REDIS_REQUESTS requests"
redis-benchmark -p "$REDIS_PORT" -t lpush -d 2048 -c "$CONNECTIONS" -P 1 -n "$REDIS_REQUESTS" \
  --csv > "$WORK/redis-benchmark.csv"
cat "$WORK/redis-benchmark.csv"
REDIS_LPUSH=$(awk -F'","' '/LPUSH/ {print $2}' "$WORK/redis-benchmark.csv" | tr -d '"')
rcli del mylist >/dev/null

log "baseline: the store's upsert statement alone, $FILL events in batches of $BATCH"
mailtrail load --sql-baseline "$FILL" --batch-size "$BATCH" --json | tee "$WORK/sql.json"
SQL_RATE=$(jq -r .per_s "$WORK/sql.json")
truncate_tables

# ---------------------------------------------------------------------------------------------
start_receiver() {
  env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" MAILTRAIL_SIGNING_KEYS="$SIGNING_KEY" \
    MAILTRAIL_BIND="127.0.0.1:$RECEIVER_PORT" MAILTRAIL_REDIS_PREFIX="$PREFIX" \
    MAILTRAIL_HTTP_WORKERS="$HTTP_WORKERS" RUST_LOG="$1" \
    target/release/mailtrail-receiver >>"$WORK/receiver.log" 2>&1 &
  RECEIVER_PID=$!
  for _ in $(seq 1 50); do
    curl -fs "http://127.0.0.1:$RECEIVER_PORT/healthz" >/dev/null 2>&1 && return 0
    (exec 3<>"/dev/tcp/127.0.0.1/$RECEIVER_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the receiver did not start; its log:" >&2
  cat "$WORK/receiver.log" >&2
  return 1
}
full_speed() {
  mailtrail load --connections "$CONNECTIONS" --duration 2s --json >/dev/null  # warm-up
  rcli del "${PREFIX}events" >/dev/null
  mailtrail load --connections "$CONNECTIONS" --duration "${SECONDS_RUN}s" --json | tee "$1"
  rcli del "${PREFIX}events" >/dev/null
}

log "receiver with RUST_LOG=warn: full speed, $CONNECTIONS connections, ${SECONDS_RUN}s"
start_receiver warn
full_speed "$WORK/receiver-warn.json"
RECEIVER_WARN_HWM=$(hwm_kb "$RECEIVER_PID")
stop_pid "$RECEIVER_PID"; RECEIVER_PID=""

log "receiver with the default log level (info): full speed, $CONNECTIONS connections, ${SECONDS_RUN}s"
start_receiver info
full_speed "$WORK/receiver.json"

log "receiver (info): $RATE req/s offered for ${SECONDS_RUN}s"
mailtrail load --connections "$CONNECTIONS" --rate "$RATE" --duration "${SECONDS_RUN}s" --json \
  | tee "$WORK/receiver-rate.json"
rcli del "${PREFIX}events" >/dev/null

# ---------------------------------------------------------------------------------------------
log "worker: drain $FILL pre-filled envelopes, batch size $BATCH"
truncate_tables
mailtrail load --fill "$FILL" --json | tee "$WORK/fill.json"
[ "$(rcli llen "${PREFIX}events")" = "$FILL" ] || { echo "fill did not push $FILL envelopes" >&2; exit 1; }
env DATABASE_URL="$DATABASE_URL" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" \
  MAILTRAIL_REDIS_PREFIX="$PREFIX" MAILTRAIL_WORKER_ID="$WORKER_ID" \
  MAILTRAIL_BATCH_SIZE="$BATCH" MAILTRAIL_MIGRATE=false RUST_LOG=info \
  target/release/mailtrail-worker >>"$WORK/worker.log" 2>&1 &
WORKER_PID=$!
# Timed from the first claim to the last settle (the processing list empty again), polled every
# 10 ms; the worker's start-up (connections, lease) is not part of its throughput.
DRAIN_START="" DRAIN_END=""
DEADLINE=$(( $(now_ms) + 120000 ))
while [ "$(now_ms)" -lt "$DEADLINE" ]; do
  read -r backlog processing < <(rcli eval \
    "return {redis.call('LLEN', KEYS[1]), redis.call('LLEN', KEYS[2])}" 2 \
    "${PREFIX}events" "${PREFIX}processing:$WORKER_ID" | paste -sd' ')
  if [ -z "$DRAIN_START" ] && [ "$backlog" -lt "$FILL" ]; then DRAIN_START=$(now_ms); fi
  if [ -n "$DRAIN_START" ] && [ "$backlog" = 0 ] && [ "$processing" = 0 ]; then
    DRAIN_END=$(now_ms); break
  fi
  sleep 0.01
done
[ -n "$DRAIN_END" ] || { echo "the worker did not drain the backlog in 120 s" >&2; tail -20 "$WORK/worker.log" >&2; exit 1; }
STORED=$(psql "$DATABASE_URL" -qAtc 'SELECT count(*) FROM email_events')
DRAIN_MS=$(( DRAIN_END - DRAIN_START ))
WORKER_RATE=$(awk -v n="$FILL" -v ms="$DRAIN_MS" 'BEGIN {printf "%.0f", n * 1000 / ms}')
echo "drained $FILL envelopes in ${DRAIN_MS} ms: $WORKER_RATE events/s; email_events holds $STORED rows"
[ "$STORED" = "$FILL" ] || { echo "expected $FILL stored events, found $STORED" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
log "end to end: $E2E_RATE events/s offered for ${E2E_SECONDS}s, receiver + worker"
BACKLOG_START=$(rcli llen "${PREFIX}events")
( while true; do echo "$(now_ms) $(rcli llen "${PREFIX}events")"; sleep 0.5; done ) \
  > "$WORK/backlog.txt" &
SAMPLER_PID=$!
mailtrail load --connections "$CONNECTIONS" --rate "$E2E_RATE" --duration "${E2E_SECONDS}s" \
  --sent-log "$WORK/sent.csv" --json | tee "$WORK/e2e.json"
BACKLOG_END=$(rcli llen "${PREFIX}events")
stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
BACKLOG_MAX=$(awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$WORK/backlog.txt")
for _ in $(seq 1 600); do
  [ "$(rcli llen "${PREFIX}events")" = 0 ] && [ "$(rcli llen "${PREFIX}processing:$WORKER_ID")" = 0 ] && break
  sleep 0.1
done
# Lag: from the load generator's send time of each webhook answered 200 (a hair before the
# receiver's received_at_ms) to email_events.received_at, which is now() of the worker's
# transaction, i.e. when the writing statement started; the commit follows within that
# statement's duration (a few ms for a batch).
read -r LAG_P50 LAG_P99 LAG_MAX LAG_ROWS < <(psql "$DATABASE_URL" -qAt -F' ' <<SQL
CREATE TEMP TABLE sent (event_id text PRIMARY KEY, sent_at_us bigint);
\copy sent FROM '$WORK/sent.csv' WITH (FORMAT csv)
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms))::numeric, 1),
       round((percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms))::numeric, 1),
       round(max(lag_ms)::numeric, 1), count(*)
FROM (SELECT extract(epoch FROM e.received_at) * 1000 - s.sent_at_us / 1000.0 AS lag_ms
      FROM sent s JOIN email_events e USING (event_id)) lags;
SQL
)
SENT_ROWS=$(wc -l < "$WORK/sent.csv")
echo "backlog: $BACKLOG_START at start, max $BACKLOG_MAX while loaded, $BACKLOG_END at the end"
echo "lag p50 ${LAG_P50} ms, p99 ${LAG_P99} ms, max ${LAG_MAX} ms over $LAG_ROWS of $SENT_ROWS accepted webhooks"
RECEIVER_HWM=$(hwm_kb "$RECEIVER_PID")
WORKER_HWM=$(hwm_kb "$WORKER_PID")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
CRITERION_TEXT=""
if [ "$CRITERION" = 1 ]; then
  log "criterion micro-benchmarks (mailtrail-core parse), short warm-up and measurement"
  cargo bench --quiet -p mailtrail-core --bench parse -- --warm-up-time 1 --measurement-time 2 \
    2>/dev/null | tee "$WORK/criterion.txt"
  CRITERION_TEXT=$(grep -E '^[a-z_/]+ +time:|^[a-z_/]+$|time:' "$WORK/criterion.txt" | sed 's/^/    /' || true)
fi

# ---------------------------------------------------------------------------------------------
j() { jq -r "$2" "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a"}'; }
mb() { awk -v kb="$1" 'BEGIN {printf "%.1f MB", kb / 1024}'; }
RX=$(j "$WORK/receiver.json" .requests_per_s | xargs printf '%.0f')
RXW=$(j "$WORK/receiver-warn.json" .requests_per_s | xargs printf '%.0f')
E2E_ACHIEVED=$(j "$WORK/e2e.json" .requests_per_s | xargs printf '%.0f')
errors() { jq -r '[(.non_200 | map(.[1]) | add // 0), .transport_errors] | "\(.[0]) not 200, \(.[1]) transport"' "$1"; }
SUMMARY="$OUT_DIR/summary.md"
{
  echo "# mailtrail benchmark summary"
  echo
  echo "- when: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $CORES cores, $CPU_MODEL; load average before $LOAD_BEFORE, after $LOAD_AFTER"
  echo "- versions: $RUSTC_VERSION; redis-server $REDIS_VERSION (AOF, appendfsync always, noeviction); PostgreSQL $PG_VERSION"
  echo "- settings: $CONNECTIONS connections, MAILTRAIL_HTTP_WORKERS=$HTTP_WORKERS, batch size $BATCH, ~2 KB JSON webhooks"
  echo
  echo "| stage | figure | baseline | ratio | target |"
  echo "|---|---|---|---|---|"
  echo "| redis-benchmark LPUSH 2 KB, -c $CONNECTIONS -P 1 | $(printf '%.0f' "$REDIS_LPUSH") req/s | | | |"
  echo "| store upsert alone, batches of $BATCH | $(printf '%.0f' "$SQL_RATE") rows/s | | | |"
  echo "| receiver full speed, RUST_LOG=info (default) | $RX req/s ($(errors "$WORK/receiver.json")) | LPUSH | $(ratio "$RX" "$REDIS_LPUSH") | >= 60% |"
  echo "| receiver full speed, RUST_LOG=warn | $RXW req/s ($(errors "$WORK/receiver-warn.json")) | LPUSH | $(ratio "$RXW" "$REDIS_LPUSH") | >= 60% |"
  echo "| receiver latency at full speed (info) | p50 $(j "$WORK/receiver.json" .p50_ms) ms, p99 $(j "$WORK/receiver.json" .p99_ms) ms, p99.9 $(j "$WORK/receiver.json" .p999_ms) ms | | | |"
  echo "| receiver latency at $RATE req/s offered | p50 $(j "$WORK/receiver-rate.json" .p50_ms) ms, p99 $(j "$WORK/receiver-rate.json" .p99_ms) ms, p99.9 $(j "$WORK/receiver-rate.json" .p999_ms) ms ($(errors "$WORK/receiver-rate.json")) | | | p99 < 2 ms |"
  echo "| worker drain of $FILL envelopes | $WORKER_RATE events/s | upsert alone | $(ratio "$WORKER_RATE" "$SQL_RATE") | >= 70% |"
  echo "| end to end, $E2E_RATE/s offered for ${E2E_SECONDS}s | $E2E_ACHIEVED req/s answered ($(errors "$WORK/e2e.json")); backlog $BACKLOG_START -> max $BACKLOG_MAX -> $BACKLOG_END | | | no backlog growth |"
  echo "| end-to-end lag (send -> worker's transaction) | p50 $LAG_P50 ms, p99 $LAG_P99 ms, max $LAG_MAX ms ($LAG_ROWS rows) | | | reported |"
  echo "| end-to-end request latency | p50 $(j "$WORK/e2e.json" .p50_ms) ms, p99 $(j "$WORK/e2e.json" .p99_ms) ms, p99.9 $(j "$WORK/e2e.json" .p999_ms) ms | | | |"
  echo "| peak RSS receiver (VmHWM) | $(mb "$RECEIVER_HWM") (info run + e2e); $(mb "$RECEIVER_WARN_HWM") (warn run) | | | < 30 MB |"
  echo "| peak RSS worker (VmHWM) | $(mb "$WORKER_HWM") (drain + e2e) | | | < 60 MB |"
  if [ -n "$CRITERION_TEXT" ]; then
    echo
    echo "criterion (mailtrail-core, --warm-up-time 1 --measurement-time 2):"
    echo
    echo "$CRITERION_TEXT"
  fi
} > "$SUMMARY"
log "summary (also in $SUMMARY)"
cat "$SUMMARY"
