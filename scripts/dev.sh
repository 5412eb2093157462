#!/usr/bin/env bash
# `just dev`: bring everything up and show it working.
#
# 1. Postgres and Redis (scripts/services.sh ensure);
# 2. a `mailtrail` database, migrated;
# 3. mailtrail-receiver, mailtrail-worker and mailtrail-api in the background (logs and pids in
#    .dev/);
# 4. signed sample events through the receiver (`mailtrail send-sample`);
# 5. the deliverability table once the worker has drained the backlog, and a ready-to-paste
#    `curl` of the read API with a fresh token, and the dashboard's address with a project token.
# The services keep running; `just stop` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mailtrail}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/}"
export MAILTRAIL_BIND="${MAILTRAIL_BIND:-127.0.0.1:8080}"
export MAILTRAIL_REDIS_PREFIX="${MAILTRAIL_REDIS_PREFIX:-mailtrail:}"
# A key for local samples only; production uses the Mailgun account's webhook signing key.
export MAILTRAIL_SIGNING_KEYS="${MAILTRAIL_SIGNING_KEYS:-dev-signing-key}"
export MAILTRAIL_RECEIVER_URL="http://$MAILTRAIL_BIND"
export MAILTRAIL_API_BIND="${MAILTRAIL_API_BIND:-127.0.0.1:8081}"
export RUST_LOG="${RUST_LOG:-info}"
DEV_DIR="$PWD/.dev"
mkdir -p "$DEV_DIR/logs"

scripts/services.sh ensure

echo "--- building"
cargo build --bins --quiet
BIN="${CARGO_TARGET_DIR:-target}/debug"

echo "--- database"
if command -v psql >/dev/null 2>&1; then
  admin_url="${DATABASE_URL%/*}/postgres"
  if ! psql "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '${DATABASE_URL##*/}'" | grep -q 1; then
    psql "$admin_url" -qc "CREATE DATABASE \"${DATABASE_URL##*/}\""
  fi
fi
"$BIN/mailtrail" migrate

stop_pid() {
  local file="$DEV_DIR/$1.pid"
  if [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null; then
    kill "$(cat "$file")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$file")" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$file"
}

echo "--- starting mailtrail-receiver on $MAILTRAIL_BIND, mailtrail-worker and mailtrail-api on $MAILTRAIL_API_BIND"
stop_pid receiver
stop_pid worker
stop_pid api
"$BIN/mailtrail-receiver" >"$DEV_DIR/logs/receiver.log" 2>&1 &
echo $! >"$DEV_DIR/receiver.pid"
"$BIN/mailtrail-worker" >"$DEV_DIR/logs/worker.log" 2>&1 &
echo $! >"$DEV_DIR/worker.pid"
"$BIN/mailtrail-api" >"$DEV_DIR/logs/api.log" 2>&1 &
echo $! >"$DEV_DIR/api.pid"

for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/${MAILTRAIL_BIND%:*}/${MAILTRAIL_BIND##*:}") 2>/dev/null; then break; fi
  sleep 0.1
done

echo "--- sending signed sample events"
"$BIN/mailtrail" send-sample --url "$MAILTRAIL_RECEIVER_URL"

echo "--- waiting for the worker to drain the backlog"
for _ in $(seq 1 150); do
  status=$("$BIN/mailtrail" queue status --json)
  # Drained: nothing waiting and no worker holding envelopes.
  if echo "$status" | grep -q '"length": 0,' && ! echo "$status" | grep -q '"envelopes": [1-9]'; then
    break
  fi
  sleep 0.2
done

echo
echo "=== deliverability, whole system"
"$BIN/mailtrail" stats --all
echo
echo "=== project 1, by subject"
"$BIN/mailtrail" stats --project 1 --by-subject
echo
echo "=== backer 2"
"$BIN/mailtrail" stats --backer 2
echo
echo "=== queue"
"$BIN/mailtrail" queue status
echo
echo
echo "=== the read API (docs/api.md), with a token made just now"
token=$("$BIN/mailtrail" api-token create --name "dev-$(date +%s)")
echo "curl -s -H 'Authorization: Bearer $token' http://$MAILTRAIL_API_BIND/v1/projects/1/stats?by=subject"
curl -s -H "Authorization: Bearer $token" "http://$MAILTRAIL_API_BIND/v1/projects/1/stats?by=subject" | head -c 400 || true
echo
echo
echo
echo "=== the dashboard (docs/dashboard.md): open http://$MAILTRAIL_API_BIND/ and sign in with"
echo "project 1's token, made just now (an unscoped token, like the one above, shows every project):"
"$BIN/mailtrail" api-token create --name "dev-project-1-$(date +%s)" --project 1
echo
echo "receiver, worker and api keep running (logs in .dev/logs/); stop them with: just stop"
