#!/usr/bin/env bash
# The receiver and worker stages on a local Redis Cluster, next to a single node:
#
#   BENCH_REDIS=cluster just bench      (runs this after the usual stages; its table joins the summary)
#   scripts/bench-cluster.sh            (alone)
#
# Three queue layouts, each measured the same way on this machine, one after the other:
#   single     one redis-server, one shard (what scripts/bench.sh measures);
#   cluster/1  a three-master Redis Cluster, one shard (every key of the queue on one master);
#   cluster/3  the same cluster, MAILTRAIL_QUEUE_SHARDS=3 (one shard per master).
# For each: the receiver at full speed (mailtrail-bench, N connections, fixed time), then
# BENCH_CLUSTER_FILL envelopes pushed (mailtrail-bench --fill, spread over the shards) and drained
# by the release worker(s), timed from the first claim to an empty queue (`mailtrail queue status
# --json`, sampled every 0.2 s). Every redis-server runs with production settings (AOF,
# appendfsync always, noeviction). All the servers share this machine's cores, so the cluster
# rows measure what the cluster and the shards cost here; what they buy needs more machines
# (docs/scaling.md has the arithmetic).
#
# Knobs: BENCH_CONNECTIONS (32), BENCH_SECONDS (10), BENCH_CLUSTER_FILL (100000), BENCH_BATCH
# (1000), BENCH_CLUSTER_WORKERS (1: workers per layout; the same for every layout),
# BENCH_HTTP_WORKERS (0), MAILTRAIL_TEST_DATABASE_URL. BENCH_CLUSTER_OUT names a file for the
# markdown table (scripts/bench.sh sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${BENCH_CONNECTIONS:-32}
SECONDS_RUN=${BENCH_SECONDS:-10}
FILL=${BENCH_CLUSTER_FILL:-100000}
BATCH=${BENCH_BATCH:-1000}
WORKERS=${BENCH_CLUSTER_WORKERS:-1}
HTTP_WORKERS=${BENCH_HTTP_WORKERS:-0}
ADMIN_URL=${MAILTRAIL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SIGNING_KEY=bench-signing-key
PREFIX="benchcluster:"
RELEASE_DIR="${CARGO_TARGET_DIR:-target}/release"
OUT_DIR=target/bench
mkdir -p "$OUT_DIR"
OUT=${BENCH_CLUSTER_OUT:-$OUT_DIR/cluster.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailtrail-bench-cluster.XXXXXX")
DB_NAME="mailtrail_bench_cluster_$$"
DATABASE_URL="${ADMIN_URL%/*}/$DB_NAME"
SERVER_PIDS=() RECEIVER_PID="" WORKER_PIDS=()

log() { printf '\n== %s\n' "$*" >&2; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
stop_servers() {
  for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
  SERVER_PIDS=()
}
cleanup() {
  local status=$?
  stop_pid "$RECEIVER_PID"
  for pid in "${WORKER_PIDS[@]}"; do stop_pid "$pid"; done
  stop_servers
  psql "$ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts one redis-server on a free port (cluster mode when $1 = cluster); prints its port.
start_server() {
  local port bus dir
  port=$(free_port)
  dir="$WORK/redis-$port"
  mkdir -p "$dir"
  local cluster_args=()
  if [ "$1" = cluster ]; then
    bus=$(free_port)
    cluster_args=(--cluster-enabled yes --cluster-port "$bus" --cluster-config-file nodes.conf)
  fi
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync always --maxmemory-policy noeviction --save '' --logfile "$dir/log" \
    "${cluster_args[@]}" >/dev/null 2>&1 &
  SERVER_PIDS+=($!)
  for _ in $(seq 1 50); do [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
  echo "$port"
}

# Sets REDIS_URL and CLUSTER for a layout: `single`, or `cluster` (three masters).
start_layout() {
  stop_servers
  if [ "$1" = single ]; then
    REDIS_URL="redis://127.0.0.1:$(start_server single)/"
    CLUSTER=false
    return
  fi
  local ports=() nodes=() urls=()
  for _ in 1 2 3; do ports+=("$(start_server cluster)"); done
  for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); urls+=("redis://127.0.0.1:$port/"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 1 300); do
    local ok=0
    for port in "${ports[@]}"; do
      redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' && ok=$(( ok + 1 ))
    done
    [ "$ok" = 3 ] && break
    sleep 0.1
  done
  REDIS_URL=$(IFS=,; echo "${urls[*]}")
  CLUSTER=true
}

run_env() {
  env DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" MAILTRAIL_REDIS_CLUSTER="$CLUSTER" \
    MAILTRAIL_QUEUE_SHARDS="$SHARDS" MAILTRAIL_REDIS_PREFIX="$PREFIX" \
    MAILTRAIL_SIGNING_KEYS="$SIGNING_KEY" MAILTRAIL_RECEIVER_URL="http://127.0.0.1:$RECEIVER_PORT" "$@"
}
queue_left() {  # envelopes waiting plus in flight, or "x" when the status cannot be read
  run_env "$RELEASE_DIR"/mailtrail queue status --json 2>/dev/null \
    | jq -r '.backlog.length + ([.in_flight[].envelopes] | add // 0)' 2>/dev/null || echo x
}

# One layout: $1 = name, $2 = single|cluster, $3 = shards. Appends a row to $WORK/rows.
measure() {
  local name=$1 kind=$2
  SHARDS=$3
  log "$name: $kind, $SHARDS shard(s)"
  start_layout "$kind"
  RECEIVER_PORT=$(free_port)
  run_env MAILTRAIL_BIND="127.0.0.1:$RECEIVER_PORT" MAILTRAIL_HTTP_WORKERS="$HTTP_WORKERS" \
    RUST_LOG=info "$RELEASE_DIR"/mailtrail-receiver >>"$WORK/receiver-$name.log" 2>&1 &
  RECEIVER_PID=$!
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$RECEIVER_PORT") 2>/dev/null && break; sleep 0.1; done
  run_env "$RELEASE_DIR"/mailtrail-bench --connections "$CONNECTIONS" --duration 2s --json >/dev/null
  run_env "$RELEASE_DIR"/mailtrail-bench --connections "$CONNECTIONS" --duration "${SECONDS_RUN}s" \
    --json | tee "$WORK/receiver-$name.json"
  stop_pid "$RECEIVER_PID"; RECEIVER_PID=""
  # The receiver's envelopes are not the drain's: start from an empty database and queue.
  start_layout "$kind"
  psql "$DATABASE_URL" -qAtc 'TRUNCATE email_events, sent_emails, project_rollups, system_rollups' >/dev/null
  run_env "$RELEASE_DIR"/mailtrail-bench --fill "$FILL" --json | tee "$WORK/fill-$name.json"
  [ "$(queue_left)" = "$FILL" ] || { echo "the fill did not queue $FILL envelopes" >&2; exit 1; }
  WORKER_PIDS=()
  for n in $(seq 1 "$WORKERS"); do
    run_env MAILTRAIL_WORKER_ID="bench-$name-$n" MAILTRAIL_BATCH_SIZE="$BATCH" MAILTRAIL_MIGRATE=false \
      MAILTRAIL_METRICS_BIND="" RUST_LOG=info "$RELEASE_DIR"/mailtrail-worker >>"$WORK/worker-$name.log" 2>&1 &
    WORKER_PIDS+=($!)
  done
  local start="" end="" left
  for _ in $(seq 1 1500); do
    left=$(queue_left)
    [ -z "$start" ] && [ "$left" != x ] && [ "$left" -lt "$FILL" ] && start=$(date +%s%3N)
    [ -n "$start" ] && [ "$left" = 0 ] && { end=$(date +%s%3N); break; }
    sleep 0.2
  done
  [ -n "$end" ] || { echo "$name: the workers did not drain $FILL envelopes" >&2; tail -20 "$WORK/worker-$name.log" >&2; exit 1; }
  for pid in "${WORKER_PIDS[@]}"; do stop_pid "$pid"; done
  WORKER_PIDS=()
  local stored drain_ms rate rps p99
  stored=$(psql "$DATABASE_URL" -qAtc 'SELECT count(*) FROM email_events')
  [ "$stored" = "$FILL" ] || { echo "$name: expected $FILL stored events, found $stored" >&2; exit 1; }
  drain_ms=$(( end - start ))
  rate=$(awk -v n="$FILL" -v ms="$drain_ms" 'BEGIN {printf "%.0f", n * 1000 / ms}')
  rps=$(jq -r .requests_per_s "$WORK/receiver-$name.json" | xargs printf '%.0f')
  p99=$(jq -r .p99_ms "$WORK/receiver-$name.json")
  echo "$name: receiver $rps req/s (p99 $p99 ms); drain of $FILL in $drain_ms ms = $rate events/s"
  echo "$name|$kind|$SHARDS|$rps|$p99|$rate|$drain_ms" >> "$WORK/rows"
}

log "building (cargo build --release)"
cargo build --release --quiet -p mailtrail-receiver -p mailtrail-worker -p mailtrail-cli -p mailtrail-bench
psql "$ADMIN_URL" -qAtc "CREATE DATABASE $DB_NAME" >/dev/null
SHARDS=1 CLUSTER=false REDIS_URL=redis://127.0.0.1:1/ RECEIVER_PORT=0 \
  run_env "$RELEASE_DIR"/mailtrail migrate >/dev/null

measure single single 1
measure cluster-1 cluster 1
measure cluster-3 cluster 3

{
  echo "Redis Cluster ($(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores shared by every server; redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), AOF always; $CONNECTIONS connections for ${SECONDS_RUN}s; a drain of $FILL envelopes by $WORKERS worker(s), batches of $BATCH):"
  echo
  echo "| layout | receiver full speed | receiver p99 | worker drain | vs single node |"
  echo "|---|---|---|---|---|"
  single_rx=$(awk -F'|' '$1 == "single" {print $4}' "$WORK/rows")
  single_drain=$(awk -F'|' '$1 == "single" {print $6}' "$WORK/rows")
  while IFS='|' read -r name kind shards rps p99 rate drain_ms; do
    label="single node, 1 shard"
    [ "$kind" = cluster ] && label="3-master cluster, $shards shard(s)"
    vs=$(awk -v a="$rps" -v b="$single_rx" -v c="$rate" -v d="$single_drain" \
      'BEGIN {printf "receiver %.0f%%, drain %.0f%%", 100 * a / b, 100 * c / d}')
    echo "| $label | $rps req/s | $p99 ms | $rate events/s ($drain_ms ms) | $vs |"
  done < "$WORK/rows"
} > "$OUT"
log "summary (also in $OUT)"
cat "$OUT"
