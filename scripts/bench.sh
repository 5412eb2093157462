#!/usr/bin/env bash
# Benchmarks that prove the speed: each stage measured next to the ceiling of what it sits on.
#
#   scripts/bench.sh        (or `just bench`)
#
# 1. baselines: redis-benchmark LPUSH of a ~2 KB value (same Redis, -P 1, same concurrency as the
#    load generator), and the store's exact upsert statement issued directly (same events, same
#    batch size) on the same Postgres;
# 2. receiver: `mailtrail-bench` at full speed (N connections, fixed time), in rounds that take
#    turns with redis-benchmark so each ratio compares figures taken moments apart; and at a
#    fixed rate, next to a bare LPUSH of the same envelopes at the same rate (the latency floor);
# 3. worker: a pre-filled backlog drained by the real release worker;
# 4. end to end: receiver and worker together at two offered rates (one this machine should
#    sustain, and the 25,000/s target): backlog and lag;
# 5. conversions: the read API started on the same Redis and database, conversion reports posted
#    to POST /v1/conversions until BENCH_CONVERSIONS are stored by the (still running) worker:
#    conversions/s through API + queue + worker;
# 6. statistics: a database of its own seeded to 250,000 and then 2,500,000 messages through the
#    worker's statement; each question timed from the counters and by a plain GROUP BY; then the
#    read API on it under wrk (16 connections): requests/s, p50 and p99 per endpoint;
# 7. a summary table (stdout and target/bench/summary.md).
#
# It runs a redis-server of its own (production settings: AOF, appendfsync always, noeviction)
# on a free port with its data in a temp dir, and a database of its own on the shared Postgres;
# both go away on exit, whatever happens. Loopback only, bounded in time (BENCH_TIMEOUT_SECS).
#
# Knobs (environment): BENCH_CONNECTIONS (32), BENCH_SECONDS (10), BENCH_RATE (2000),
# BENCH_FILL (200000), BENCH_BATCH (1000), BENCH_ROUNDS (3), BENCH_E2E_RATE (25000),
# BENCH_E2E_SUSTAINED_RATE (8000), BENCH_E2E_SECONDS (20),
# BENCH_HTTP_WORKERS (0 = one per core), BENCH_STATS_SIZES (250000,2500000; 0 skips the statistics,
# read API and dashboard stages), BENCH_CONVERSIONS (100000; 0 skips the conversions stage),
# BENCH_CONVERSIONS_PER_REPORT (100), BENCH_CRITERION (1 = also run the parse
# micro-benchmarks), MAILTRAIL_TEST_DATABASE_URL (admin URL of the Postgres to use),
# BENCH_REDIS (`cluster` = also run scripts/bench-cluster.sh: the receiver and worker stages on a
# local three-master Redis Cluster with 3 shards, next to a single node; its table joins the
# summary).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${BENCH_CONNECTIONS:-32}
SECONDS_RUN=${BENCH_SECONDS:-10}
RATE=${BENCH_RATE:-2000}
FILL=${BENCH_FILL:-200000}
BATCH=${BENCH_BATCH:-1000}
E2E_RATE=${BENCH_E2E_RATE:-25000}
E2E_SECONDS=${BENCH_E2E_SECONDS:-20}
E2E_SUSTAINED_RATE=${BENCH_E2E_SUSTAINED_RATE:-8000}
HTTP_WORKERS=${BENCH_HTTP_WORKERS:-0}
CRITERION=${BENCH_CRITERION:-1}
REDIS_REQUESTS=${BENCH_REDIS_REQUESTS:-400000}
TIMEOUT_SECS=${BENCH_TIMEOUT_SECS:-1800}
STATS_SIZES=${BENCH_STATS_SIZES:-250000,2500000}
ROUNDS=${BENCH_ROUNDS:-3}
CONVERSIONS=${BENCH_CONVERSIONS:-100000}
CONVERSIONS_PER_REPORT=${BENCH_CONVERSIONS_PER_REPORT:-100}
ADMIN_URL=${MAILTRAIL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SIGNING_KEY=bench-signing-key
PREFIX="bench:"
# What the queue's key names start with: the prefix's hash tag (crates/mailtrail-queue/src/keys.rs).
KEYS="{bench}:"
WORKER_ID=bench-worker

# Binaries come from wherever cargo puts them (CARGO_TARGET_DIR, when set, as CI does).
RELEASE_DIR="${CARGO_TARGET_DIR:-target}/release"
OUT_DIR=target/bench
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-bench.XXXXXX")
DB_NAME="mailtrail_bench_$$"
DATABASE_URL="${ADMIN_URL%/*}/$DB_NAME"
REDIS_PID="" RECEIVER_PID="" WORKER_PID="" SAMPLER_PID="" WATCHDOG_PID="" API_PID=""

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
  stop_pid "$API_PID"
  stop_pid "$REDIS_PID"
  psql "$ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
  psql "$ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS ${DB_NAME}_stats WITH (FORCE)" >/dev/null 2>&1 || true
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
# The operator CLI and the load generator, both configured for this run's Redis and database.
run_with_env() {
  env DATABASE_URL="$DATABASE_URL" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" \
    MAILTRAIL_REDIS_PREFIX="$PREFIX" MAILTRAIL_SIGNING_KEYS="$SIGNING_KEY" \
    MAILTRAIL_RECEIVER_URL="http://127.0.0.1:$RECEIVER_PORT" "$@"
}
mailtrail() { run_with_env "$RELEASE_DIR"/mailtrail "$@"; }
mailtrail_bench() { run_with_env "$RELEASE_DIR"/mailtrail-bench "$@"; }

log "machine"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
CORES=$(nproc)
echo "cores: $CORES, cpu: $CPU_MODEL, load average before: $LOAD_BEFORE"

log "building (cargo build --release)"
cargo build --release --quiet -p mailtrail-receiver -p mailtrail-worker -p mailtrail-cli -p mailtrail-bench -p mailtrail-api
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
truncate_tables() {
  psql "$DATABASE_URL" -qAtc 'TRUNCATE email_events, sent_emails, project_rollups, system_rollups, conversions, conversion_rollups' >/dev/null
}
# The statistics counters are kept by triggers on sent_emails; the drain is timed with and without.
counters() { psql "$DATABASE_URL" -qAtc "ALTER TABLE sent_emails $1 TRIGGER USER" >/dev/null; }

# Rewrites Redis' append-only file and waits until it is done (after any rewrite in progress).
aof_idle() {
  for _ in $(seq 1 600); do
    rcli info persistence | grep -qE '^aof_rewrite_in_progress:0' \
      && rcli info persistence | grep -qE '^aof_rewrite_scheduled:0' && return 0
    sleep 0.1
  done
}
rewrite_aof() { aof_idle; rcli bgrewriteaof >/dev/null; aof_idle; }
# Every full-speed round starts from the same Redis: lists emptied and the append-only file
# rewritten while nothing else runs, so no round pays for compacting an earlier round's data.
compact_redis() {
  rcli del mylist "${KEYS}events" >/dev/null
  rewrite_aof
}
# redis-benchmark LPUSH of a 2 KB value at the load generator's concurrency; prints LPUSH/s.
lpush_benchmark() {
  compact_redis
  redis-benchmark -p "$REDIS_PORT" -t lpush -d 2048 -c "$CONNECTIONS" -P 1 -n "$REDIS_REQUESTS" \
    --csv > "$WORK/redis-benchmark-$1.csv"
  awk -F'","' '/LPUSH/ {print $2}' "$WORK/redis-benchmark-$1.csv" | tr -d '"'
}

# ---------------------------------------------------------------------------------------------
start_receiver() {
  env REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" MAILTRAIL_SIGNING_KEYS="$SIGNING_KEY" \
    MAILTRAIL_BIND="127.0.0.1:$RECEIVER_PORT" MAILTRAIL_REDIS_PREFIX="$PREFIX" \
    MAILTRAIL_HTTP_WORKERS="$HTTP_WORKERS" RUST_LOG="$1" \
    "$RELEASE_DIR"/mailtrail-receiver >>"$WORK/receiver.log" 2>&1 &
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
  mailtrail_bench --connections "$CONNECTIONS" --duration 2s --json >/dev/null  # warm-up
  compact_redis
  mailtrail_bench --connections "$CONNECTIONS" --duration "${SECONDS_RUN}s" --json | tee "$1"
  rcli del "${KEYS}events" >/dev/null
}

# Receiver and redis-benchmark take turns, so each receiver figure has a baseline measured
# moments before it on the same machine in the same state: this machine's speed drifts by
# +-15% over minutes, and a ratio of figures taken minutes apart would carry that drift.
RECEIVER_HWM=0
for round in $(seq 1 "$ROUNDS") warn; do
  level=info
  [ "$round" = warn ] && level=warn
  log "round $round: redis-benchmark LPUSH 2 KB, -c $CONNECTIONS -P 1, then the receiver (RUST_LOG=$level) at full speed for ${SECONDS_RUN}s"
  LPUSH_RATE=$(lpush_benchmark "$round")
  echo "redis-benchmark LPUSH: $LPUSH_RATE req/s"
  echo "$LPUSH_RATE" > "$WORK/lpush-$round.txt"
  start_receiver "$level"
  full_speed "$WORK/receiver-$round.json"
  hwm=$(hwm_kb "$RECEIVER_PID")
  if [ "$round" = warn ]; then RECEIVER_WARN_HWM=$hwm; else RECEIVER_HWM=$(( hwm > RECEIVER_HWM ? hwm : RECEIVER_HWM )); fi
  stop_pid "$RECEIVER_PID"; RECEIVER_PID=""
done

# Latency rides on the disk's fsync time, so each latency run starts with the disk quiet: the
# full-speed rounds leave hundreds of MB of append-only file for the kernel to write back, and
# that writeback would otherwise land in whichever run comes first.
quiet_disk() { compact_redis; sync; sleep 1; }
log "latency at $RATE req/s offered for ${SECONDS_RUN}s: bare LPUSH of the same envelopes, then the receiver (info)"
quiet_disk
mailtrail_bench --lpush-baseline --connections "$CONNECTIONS" --rate "$RATE" \
  --duration "${SECONDS_RUN}s" --json | tee "$WORK/lpush-rate.json"
start_receiver info
quiet_disk
mailtrail_bench --connections "$CONNECTIONS" --rate "$RATE" --duration "${SECONDS_RUN}s" --json \
  | tee "$WORK/receiver-rate.json"
rcli del "${KEYS}events" >/dev/null

# ---------------------------------------------------------------------------------------------
# The baseline runs just before the drain, in the same state: empty tables, and a checkpoint
# first so neither run pays for flushing the other's writes.
log "baseline: the store's upsert statement alone, $FILL events in batches of $BATCH"
truncate_tables
psql "$DATABASE_URL" -qAtc 'CHECKPOINT' >/dev/null
mailtrail_bench --sql-baseline "$FILL" --batch-size "$BATCH" --json | tee "$WORK/sql.json"
SQL_RATE=$(jq -r .per_s "$WORK/sql.json")

# Drains $FILL pre-filled envelopes with a fresh worker; sets WORKER_RATE. The worker keeps
# running afterwards (the end-to-end stage uses it); a second call stops the first worker.
drain() {
  log "worker: drain $FILL pre-filled envelopes, batch size $BATCH ($1)"
  if [ -n "$WORKER_PID" ]; then stop_pid "$WORKER_PID"; WORKER_PID=""; fi
  truncate_tables
  psql "$DATABASE_URL" -qAtc 'CHECKPOINT' >/dev/null
  mailtrail_bench --fill "$FILL" --json | tee "$WORK/fill.json"
  [ "$(rcli llen "${KEYS}events")" = "$FILL" ] || { echo "fill did not push $FILL envelopes" >&2; exit 1; }
  # Compact the append-only file now, with the backlog in it, so the drain is not timed while
  # Redis rewrites the 400 MB the fill just appended.
  rewrite_aof
  env DATABASE_URL="$DATABASE_URL" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" \
    MAILTRAIL_REDIS_PREFIX="$PREFIX" MAILTRAIL_WORKER_ID="$WORKER_ID" \
    MAILTRAIL_BATCH_SIZE="$BATCH" MAILTRAIL_MIGRATE=false RUST_LOG=info \
    "$RELEASE_DIR"/mailtrail-worker >>"$WORK/worker.log" 2>&1 &
  WORKER_PID=$!
  # Timed from the first claim to the last settle (the processing list empty again), by Redis'
  # own clock, sampled every 10 ms over one redis-cli connection (a process per sample would take
  # a noticeable share of the 2 cores away from the worker it measures).
  DRAIN_PROBE="local t = redis.call('TIME')
  return redis.call('LLEN', KEYS[1]) .. ' ' .. redis.call('LLEN', KEYS[2]) .. ' '
    .. string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))"
  read -r DRAIN_START DRAIN_END < <(
    rcli -r -1 -i 0.01 eval "$DRAIN_PROBE" 2 "${KEYS}events" "${KEYS}processing:$WORKER_ID" \
      | awk -v fill="$FILL" '
          NR == 1 { first = $3 }
          start == "" && $1 < fill { start = $3 }
          start != "" && $1 == 0 && $2 == 0 { print start, $3; exit }
          $3 - first > 120000 { print "", ""; exit }'
  ) || true
  [ -n "$DRAIN_END" ] || { echo "the worker did not drain the backlog in 120 s" >&2; tail -20 "$WORK/worker.log" >&2; exit 1; }
  STORED=$(psql "$DATABASE_URL" -qAtc 'SELECT count(*) FROM email_events')
  DRAIN_MS=$(( DRAIN_END - DRAIN_START ))
  WORKER_RATE=$(awk -v n="$FILL" -v ms="$DRAIN_MS" 'BEGIN {printf "%.0f", n * 1000 / ms}')
  echo "drained $FILL envelopes in ${DRAIN_MS} ms: $WORKER_RATE events/s; email_events holds $STORED rows"
  [ "$STORED" = "$FILL" ] || { echo "expected $FILL stored events, found $STORED" >&2; exit 1; }
}
counters DISABLE
drain "statistics counters off"
WORKER_RATE_NO_COUNTERS=$WORKER_RATE
counters ENABLE
drain "statistics counters on"

# ---------------------------------------------------------------------------------------------
# End to end at an offered rate: the receiver (info) and the worker together, the backlog sampled
# every 0.5 s. Writes $WORK/e2e-$1.json (the load report) and $WORK/e2e-$1.txt (backlog start,
# max, end; lag p50, p99, max; rows).
end_to_end() {
  local rate=$1
  log "end to end: $rate events/s offered for ${E2E_SECONDS}s, receiver + worker"
  local backlog_start backlog_end backlog_max
  backlog_start=$(rcli llen "${KEYS}events")
  ( while true; do echo "$(now_ms) $(rcli llen "${KEYS}events")"; sleep 0.5; done ) \
    > "$WORK/backlog-$rate.txt" &
  SAMPLER_PID=$!
  mailtrail_bench --connections "$CONNECTIONS" --rate "$rate" --duration "${E2E_SECONDS}s" \
    --sent-log "$WORK/sent-$rate.csv" --json | tee "$WORK/e2e-$rate.json"
  backlog_end=$(rcli llen "${KEYS}events")
  stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
  backlog_max=$(awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}' "$WORK/backlog-$rate.txt")
  for _ in $(seq 1 600); do
    [ "$(rcli llen "${KEYS}events")" = 0 ] && [ "$(rcli llen "${KEYS}processing:$WORKER_ID")" = 0 ] && break
    sleep 0.1
  done
  # Lag: from the moment the receiver's 200 reached the load generator (the webhook was safely
  # queued) to email_events.received_at, which is now() of the worker's writing transaction; the
  # commit follows within that statement's duration (tens of ms for a batch). So it is how far
  # behind Postgres runs, not how long webhooks waited to be sent when more was offered than
  # the receiver answers (that shows in the request latency).
  local lag
  lag=$(psql "$DATABASE_URL" -qAt -F' ' <<SQL
CREATE TEMP TABLE sent (event_id text PRIMARY KEY, answered_at_us bigint);
\copy sent FROM '$WORK/sent-$rate.csv' WITH (FORMAT csv)
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms))::numeric, 1),
       round((percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms))::numeric, 1),
       round(max(lag_ms)::numeric, 1), count(*)
FROM (SELECT extract(epoch FROM e.received_at) * 1000 - s.answered_at_us / 1000.0 AS lag_ms
      FROM sent s JOIN email_events e USING (event_id)) lags;
SQL
)
  echo "$backlog_start $backlog_max $backlog_end $lag" > "$WORK/e2e-$rate.txt"
  echo "backlog: $backlog_start at start, max $backlog_max while loaded, $backlog_end at the end"
  echo "lag p50, p99, max (ms), rows: $lag of $(wc -l < "$WORK/sent-$rate.csv") accepted webhooks"
}
end_to_end "$E2E_SUSTAINED_RATE"
end_to_end "$E2E_RATE"
RECEIVER_E2E_HWM=$(hwm_kb "$RECEIVER_PID")
RECEIVER_HWM=$(( RECEIVER_E2E_HWM > RECEIVER_HWM ? RECEIVER_E2E_HWM : RECEIVER_HWM ))
WORKER_HWM=$(hwm_kb "$WORKER_PID")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Conversions through the read API, the queue and the worker still running from the end-to-end
# stage, on the database that holds its emails (so attribution finds clicks and opens to credit).
# Writes $WORK/conversions.json.
if [ "$CONVERSIONS" != 0 ]; then
  log "conversions: $CONVERSIONS posted to the read API in reports of $CONVERSIONS_PER_REPORT, until the worker stored them"
  stop_pid "$RECEIVER_PID"; RECEIVER_PID=""
  API_PORT=$(free_port)
  env DATABASE_URL="$DATABASE_URL" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" \
    MAILTRAIL_REDIS_PREFIX="$PREFIX" MAILTRAIL_API_BIND="127.0.0.1:$API_PORT" \
    MAILTRAIL_API_METRICS_BIND="" MAILTRAIL_HTTP_WORKERS="$HTTP_WORKERS" RUST_LOG=warn \
    "$RELEASE_DIR"/mailtrail-api >>"$WORK/api.log" 2>&1 &
  API_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null && break; sleep 0.1; done
  CONVERSIONS_TOKEN=$(mailtrail api-token create --name bench-conversions)
  mailtrail_bench --conversions "$CONVERSIONS" --per-report "$CONVERSIONS_PER_REPORT" \
    --connections 8 --api-url "http://127.0.0.1:$API_PORT" --token "$CONVERSIONS_TOKEN" --json \
    | tee "$WORK/conversions.json"
  stop_pid "$API_PID"; API_PID=""
fi

# ---------------------------------------------------------------------------------------------
if [ "$STATS_SIZES" != 0 ]; then
  log "statistics: seed $STATS_SIZES messages through the worker's statement, time the questions"
  stop_pid "$WORKER_PID"; WORKER_PID=""
  stop_pid "$RECEIVER_PID"; RECEIVER_PID=""
  psql "$ADMIN_URL" -qAtc "CREATE DATABASE ${DB_NAME}_stats" >/dev/null
  DATABASE_URL="${ADMIN_URL%/*}/${DB_NAME}_stats" mailtrail migrate >/dev/null
  DATABASE_URL="${ADMIN_URL%/*}/${DB_NAME}_stats" mailtrail_bench --stats "$STATS_SIZES" --json \
    | tee "$WORK/stats.jsonl"

  # The read API on the largest seeded database: 16 connections from wrk (a second process).
  if command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null 2>&1; then
    log "read API: wrk, 16 connections, ${SECONDS_RUN}s per endpoint, at the largest size"
    API_PORT=$(free_port)
    env DATABASE_URL="${ADMIN_URL%/*}/${DB_NAME}_stats" MAILTRAIL_API_BIND="127.0.0.1:$API_PORT" \
      MAILTRAIL_API_METRICS_BIND="" RUST_LOG=warn "$RELEASE_DIR"/mailtrail-api >>"$WORK/api.log" 2>&1 &
    API_PID=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null && break; sleep 0.1; done
    API_TOKEN=$(DATABASE_URL="${ADMIN_URL%/*}/${DB_NAME}_stats" mailtrail api-token create --name bench)
    for endpoint in "/v1/projects/0/stats?by=subject" "/v1/stats"; do
      name=$(echo "$endpoint" | tr -c 'a-z0-9\n' '_')
      wrk -t2 -c16 -d"${SECONDS_RUN}s" --latency -H "Authorization: Bearer $API_TOKEN" \
        "http://127.0.0.1:$API_PORT$endpoint" | tee "$WORK/wrk-$name.txt"
      echo "$endpoint" >> "$WORK/wrk-endpoints.txt"
    done
    stop_pid "$API_PID"
  else
    echo "wrk is not installed and cannot be: the API stage is skipped" >&2
  fi

  # The dashboard's pages on the same database: sequential requests, p50/p99 per page.
  log "dashboard: each main page 100 times in a row, at the largest size"
  API_PORT=$(free_port)
  env DATABASE_URL="${ADMIN_URL%/*}/${DB_NAME}_stats" MAILTRAIL_API_BIND="127.0.0.1:$API_PORT" \
    MAILTRAIL_API_METRICS_BIND="" RUST_LOG=warn "$RELEASE_DIR"/mailtrail-api >>"$WORK/api.log" 2>&1 &
  API_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null && break; sleep 0.1; done
  DATABASE_URL="${ADMIN_URL%/*}/${DB_NAME}_stats" mailtrail_bench --dashboard "http://127.0.0.1:$API_PORT" \
    --json | tee "$WORK/dashboard.jsonl"
  stop_pid "$API_PID"
fi

# ---------------------------------------------------------------------------------------------
if [ "${BENCH_REDIS:-single}" = cluster ]; then
  stop_pid "$WORKER_PID"; WORKER_PID=""
  stop_pid "$RECEIVER_PID"; RECEIVER_PID=""
  log "Redis Cluster: scripts/bench-cluster.sh (single node, cluster with 1 shard, cluster with 3)"
  BENCH_CLUSTER_OUT="$WORK/cluster.md" scripts/bench-cluster.sh
fi

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
errors() { jq -r '[(.non_200 | map(.[1]) | add // 0), .transport_errors] | "\(.[0]) not 200, \(.[1]) transport"' "$1"; }
latency() { echo "p50 $(j "$1" .p50_ms) ms, p99 $(j "$1" .p99_ms) ms, p99.9 $(j "$1" .p999_ms) ms"; }
round_row() {  # $1 = round, $2 = log level; prints the table row, appends the ratio to ratios-$2.txt
  local rx lpush
  rx=$(j "$WORK/receiver-$1.json" .requests_per_s | xargs printf '%.0f')
  lpush=$(xargs printf '%.0f' < "$WORK/lpush-$1.txt")
  awk -v a="$rx" -v b="$lpush" 'BEGIN {if (b > 0) printf "%.4f\n", a / b}' >> "$WORK/ratios-$2.txt"
  echo "| receiver full speed, RUST_LOG=$2, round $1 | $rx req/s ($(errors "$WORK/receiver-$1.json")); $(latency "$WORK/receiver-$1.json") | LPUSH $lpush/s just before | $(ratio "$rx" "$lpush") | >= 60% |"
}
e2e_row() {  # $1 = rate
  local backlog_start backlog_max backlog_end lag_p50 lag_p99 lag_max lag_rows
  read -r backlog_start backlog_max backlog_end lag_p50 lag_p99 lag_max lag_rows < "$WORK/e2e-$1.txt"
  echo "| end to end, $1/s offered for ${E2E_SECONDS}s | $(j "$WORK/e2e-$1.json" .requests_per_s | xargs printf '%.0f') req/s answered ($(errors "$WORK/e2e-$1.json")); backlog $backlog_start -> max $backlog_max -> $backlog_end | | | no backlog growth |"
  echo "| lag at $1/s (200 answered -> worker's transaction) | p50 $lag_p50 ms, p99 $lag_p99 ms, max $lag_max ms ($lag_rows rows); request $(latency "$WORK/e2e-$1.json") | | | reported |"
}
median() { sort -n "$1" | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
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
  for round in $(seq 1 "$ROUNDS"); do round_row "$round" info; done
  echo "| **receiver full speed, RUST_LOG=info (the default), median of $ROUNDS rounds** | | | **$(awk -v r="$(median "$WORK/ratios-info.txt")" 'BEGIN {printf "%.0f%%", 100 * r}')** | >= 60% |"
  round_row warn warn
  echo "| bare LPUSH of the envelopes at $RATE/s offered (mailtrail-bench --lpush-baseline) | $(latency "$WORK/lpush-rate.json") ($(errors "$WORK/lpush-rate.json")) | | | |"
  echo "| receiver at $RATE req/s offered | $(latency "$WORK/receiver-rate.json") ($(errors "$WORK/receiver-rate.json")) | bare LPUSH p99 $(j "$WORK/lpush-rate.json" .p99_ms) ms | | p99 < 2 ms |"
  echo "| store upsert alone, batches of $BATCH | $(printf '%.0f' "$SQL_RATE") rows/s | | | |"
  echo "| worker drain of $FILL envelopes | $WORKER_RATE events/s | upsert alone | $(ratio "$WORKER_RATE" "$SQL_RATE") | >= 70% |"
  echo "| worker drain with the statistics counters | $WORKER_RATE events/s | the same drain without them: $WORKER_RATE_NO_COUNTERS events/s | $(ratio "$WORKER_RATE" "$WORKER_RATE_NO_COUNTERS") | >= 85% |"
  e2e_row "$E2E_SUSTAINED_RATE"
  e2e_row "$E2E_RATE"
  if [ -s "$WORK/conversions.json" ]; then
    echo "| conversions through API + queue + worker ($CONVERSIONS in reports of $CONVERSIONS_PER_REPORT, 8 connections) | $(j "$WORK/conversions.json" .stored_per_s | xargs printf '%.0f') conversions/s stored ($(j "$WORK/conversions.json" .attributed) attributed); API accepted $(j "$WORK/conversions.json" .accepted_per_s | xargs printf '%.0f')/s ($(j "$WORK/conversions.json" .not_accepted) not accepted) | | | reported |"
  fi
  echo "| peak RSS receiver (VmHWM) | $(mb "$RECEIVER_HWM") (info rounds, $RATE/s, end to end); $(mb "$RECEIVER_WARN_HWM") (warn round) | | | < 30 MB |"
  echo "| peak RSS worker (VmHWM) | $(mb "$WORKER_HWM") (drain + end to end) | | | < 60 MB |"
  if [ -s "$WORK/stats.jsonl" ]; then
    echo
    echo "Statistics (medians; counters: $STATS_SIZES messages seeded through the worker's statement; target < 20 ms):"
    echo
    echo "| messages | question | range | groups | from the counters | plain GROUP BY over sent_emails |"
    echo "|---|---|---|---|---|---|"
    grep '^{' "$WORK/stats.jsonl" | jq -r '"| \(.messages) | \(.question) | \(.range) | \(.groups) | \(.counters_ms * 100 | round / 100) ms | \(.group_by_ms * 10 | round / 10) ms |"'
  fi
  if [ -s "$WORK/wrk-endpoints.txt" ]; then
    echo
    echo "Read API at the largest size (wrk, 16 connections, ${SECONDS_RUN}s; targets: p99 < 10 ms, >= 5,000 req/s):"
    echo
    echo "| endpoint | requests/s | p50 | p99 | errors |"
    echo "|---|---|---|---|---|"
    while read -r endpoint; do
      name=$(echo "$endpoint" | tr -c 'a-z0-9\n' '_')
      awk -v endpoint="$endpoint" '
        $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { errors = $NF }
        END { printf "| %s | %.0f | %s | %s | %d non-2xx |\n", endpoint, rps, p50, p99, errors }
      ' "$WORK/wrk-$name.txt"
    done < "$WORK/wrk-endpoints.txt"
  fi
  if [ -s "$WORK/dashboard.jsonl" ]; then
    echo
    echo "Dashboard at the largest size (each page 100 times in a row after 5 warm-up requests; request sent to last byte read; target < 50 ms):"
    echo
    echo "| page | token | status | bytes | first (cold) | p50 | p99 | max |"
    echo "|---|---|---|---|---|---|---|---|"
    grep '^{' "$WORK/dashboard.jsonl" | jq -r '"| `\(.page)` | \(.token) | \(.status) | \(.bytes) | \(.first_ms * 100 | round / 100) ms | \(.p50_ms * 100 | round / 100) ms | \(.p99_ms * 100 | round / 100) ms | \(.max_ms * 100 | round / 100) ms |"'
  fi
  if [ -s "$WORK/cluster.md" ]; then
    echo
    cat "$WORK/cluster.md"
  fi
  if [ -n "$CRITERION_TEXT" ]; then
    echo
    echo "criterion (mailtrail-core, --warm-up-time 1 --measurement-time 2):"
    echo
    echo "$CRITERION_TEXT"
  fi
} > "$SUMMARY"
log "summary (also in $SUMMARY)"
cat "$SUMMARY"
