#!/usr/bin/env bash
# The partitioned events table at size: what docs/scaling.md quotes for Postgres.
#
#   scripts/bench-partitions.sh      (or `just bench-partitions`)
#
# On a database of its own (dropped on exit, whatever happens):
# 1. builds the schema as it was before the partitioning migration and fills it with
#    BENCH_PARTITION_MONTHS months of events (BENCH_EVENTS_PER_MONTH each, four per message:
#    accepted, delivered, opened, clicked; each recipient gets a message every few days) and the
#    matching sent_emails rows;
# 2. times `mailtrail migrate`, which converts email_events into monthly partitions;
# 3. a message's timeline: EXPLAIN ANALYZE of the query bounded by the message's span (as
#    `mailtrail_store::timeline` sends it) next to the same query without the bound, and the
#    partitions each reads;
# 4. `mailtrail erase --recipient` of one person on the full tables;
# 5. retention: a DELETE of the oldest month's rows (rolled back) next to
#    `mailtrail retention --yes` dropping the same month;
# 6. ingest: the worker's exact statement (`mailtrail-bench --sql-baseline`) on the partitioned
#    table and on the same table unpartitioned (same key, same indexes), in alternating rounds
#    on a second, fresh database.
# Prints every figure; knobs: BENCH_PARTITION_MONTHS (13), BENCH_EVENTS_PER_MONTH (400000),
# BENCH_INGEST_EVENTS (100000 per round), BENCH_INGEST_ROUNDS (3),
# MAILTRAIL_TEST_DATABASE_URL (admin URL, default postgres://postgres@127.0.0.1:5432/postgres),
# REDIS_URL (for erase's dead-letter pass; a unique prefix is used, so nothing is touched).
set -euo pipefail
cd "$(dirname "$0")/.."

MONTHS=${BENCH_PARTITION_MONTHS:-13}
PER_MONTH=${BENCH_EVENTS_PER_MONTH:-400000}
ADMIN_URL=${MAILTRAIL_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="mailtrail_bench_partitions_$$"
DB_URL="${ADMIN_URL%/*}/$DB"
INGEST_DB="mailtrail_bench_partitions_ingest_$$"
INGEST_URL="${ADMIN_URL%/*}/$INGEST_DB"
PARTITIONING=2026-12-05-000002_partition_email_events

cleanup() {
  for db in "$DB" "$INGEST_DB"; do
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

# A debug build is enough: every figure here is Postgres' time, not the binary's.
cargo build --quiet --bin mailtrail --bin mailtrail-bench
MAILTRAIL="${CARGO_TARGET_DIR:-target}/debug/mailtrail"
MAILTRAIL_BENCH="${CARGO_TARGET_DIR:-target}/debug/mailtrail-bench"
run_mailtrail() {
  env -i PATH="$PATH" DATABASE_URL="$DB_URL" REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/}" \
    MAILTRAIL_REDIS_PREFIX="mailtrail_bench_partitions_$$:" "$MAILTRAIL" "$@"
}
sql() { psql -q -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }
seconds_of() { # runs "$@", prints its wall time in seconds
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  awk -v start="$start" -v end="$end" 'BEGIN { printf "%.2f\n", end - start }'
}

psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB"

echo "## 1. the schema before partitioning, $MONTHS months x $PER_MONTH events"
sql -c "CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY NOT NULL,
                                                 run_on timestamp NOT NULL DEFAULT now())"
for dir in migrations/*/; do
  name=$(basename "$dir")
  [[ "$name" < "$PARTITIONING" ]] || continue
  sql -1 -f "$dir/up.sql" >/dev/null
  version=$(echo "${name%%_*}" | tr -d -)
  sql -c "INSERT INTO __diesel_schema_migrations (version) VALUES ('$version')"
done

MESSAGES=$((MONTHS * PER_MONTH / 4))
# Message i: month i % MONTHS (the oldest first), recipient i % 50000, 4 events a minute apart.
fill_started=$(date +%s)
sql <<SQL
INSERT INTO sent_emails (message_id, recipient, backer_id, project_id, subject, status, status_tier,
    status_explicit, status_at, opened_count, clicked_count, event_count, first_event_at,
    last_event_at, first_opened_at, last_opened_at, first_clicked_at, last_clicked_at)
SELECT 'm' || i || '@bench', 'r' || (i % 50000) || '@example.com', i % 50000, i % 200,
       'subject ' || (i % 5), 'delivered', 2, true, t + interval '1 minute', 1, 1, 4, t,
       t + interval '3 minutes', t + interval '2 minutes', t + interval '2 minutes',
       t + interval '3 minutes', t + interval '3 minutes'
FROM (SELECT i, date_trunc('month', now()) - make_interval(months => $MONTHS - 1 - (i % $MONTHS))
             + make_interval(secs => (i / $MONTHS) * 2419200.0 / ($MESSAGES / $MONTHS + 1)) AS t
      FROM generate_series(0, $MESSAGES - 1) AS i) s;
INSERT INTO email_events (event_key, message_id, recipient, kind, occurred_at, backer_id,
    project_id, status, status_tier, status_explicit, engagement, recipient_as_sent)
SELECT md5(message_id || k), message_id, recipient, kind, first_event_at + make_interval(mins => k),
       backer_id, project_id, 'delivered', CASE WHEN k = 0 THEN 0 ELSE 2 END, k < 2,
       CASE k WHEN 2 THEN 'opened' WHEN 3 THEN 'clicked' END, recipient
FROM sent_emails, generate_series(0, 3) AS k,
     LATERAL (SELECT (ARRAY['accepted', 'delivered', 'opened', 'clicked'])[k + 1] AS kind) n;
VACUUM ANALYZE;
SQL
echo "filled $MESSAGES messages, $((MESSAGES * 4)) events in $(( $(date +%s) - fill_started )) s"
sql -c "SELECT pg_size_pretty(pg_total_relation_size('email_events')) AS email_events_size"

echo "## 2. the migration converting email_events into monthly partitions"
migrate_seconds=$(seconds_of run_mailtrail migrate)
echo "mailtrail migrate: ${migrate_seconds} s for $((MESSAGES * 4)) events"
sql -c "VACUUM ANALYZE"
run_mailtrail partitions list

echo "## 3. a message's timeline"
MESSAGE="m$((MESSAGES / 2))@bench"
bounds=$(sql -At -c "SELECT min(first_event_at) || '|' || max(last_event_at) FROM sent_emails
                     WHERE message_id = '$MESSAGE'")
TIMELINE="SELECT occurred_at, message_id, recipient, kind FROM email_events WHERE message_id = '$MESSAGE'"
BOUNDED="$TIMELINE AND occurred_at BETWEEN '${bounds%|*}' AND '${bounds#*|}' ORDER BY occurred_at, event_key LIMIT 100"
UNBOUNDED="$TIMELINE ORDER BY occurred_at, event_key LIMIT 100"
explain() { # the partitions a query reads, and its planning and execution times (best of 5)
  local plan best_plan=999999 best_exec=999999 p e
  for _ in 1 2 3 4 5; do
    plan=$(sql -At -c "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) $1")
    p=$(grep -oP 'Planning Time: \K[0-9.]+' <<<"$plan")
    e=$(grep -oP 'Execution Time: \K[0-9.]+' <<<"$plan")
    best_plan=$(awk -v a="$best_plan" -v b="$p" 'BEGIN { print (b < a ? b : a) }')
    best_exec=$(awk -v a="$best_exec" -v b="$e" 'BEGIN { print (b < a ? b : a) }')
  done
  echo "  partitions read: $(grep -oP 'on \Kemail_events_(\d{4}_\d{2}|default)\b' <<<"$plan" | sort -u | wc -l);" \
       "planning ${best_plan} ms, execution ${best_exec} ms"
}
echo "bounded by the message's span (what mailtrail_store::timeline sends, after reading the span):"
explain "$BOUNDED"
sql -c "EXPLAIN (COSTS OFF) $BOUNDED"
echo "without a bound:"
explain "$UNBOUNDED"

echo "## 4. erasing one person"
PERSON="r4242@example.com"
sql -At -c "SELECT 'messages of $PERSON: ' || count(*) FROM sent_emails WHERE recipient = '$PERSON'"
erase_seconds=$(seconds_of run_mailtrail erase --recipient "$PERSON")
echo "mailtrail erase: ${erase_seconds} s"
run_mailtrail rollups verify

echo "## 5. retention of the oldest month"
OLDEST=$(sql -At -c "SELECT relname FROM pg_inherits JOIN pg_class ON oid = inhrelid
                     WHERE inhparent = 'email_events'::regclass AND relname ~ '_[0-9]{4}_[0-9]{2}$'
                     ORDER BY relname LIMIT 1")
OLDEST_ROWS=$(sql -At -c "SELECT count(*) FROM $OLDEST")
delete_ms=$(sql -At <<SQL | grep -E '^[0-9.]+$' | tail -1
BEGIN;
CREATE TEMP TABLE started AS SELECT clock_timestamp() AS t;
DELETE FROM email_events WHERE tableoid = '$OLDEST'::regclass;
SELECT round(extract(epoch FROM clock_timestamp() - t) * 1000) FROM started;
ROLLBACK;
SQL
)
echo "DELETE of $OLDEST's $OLDEST_ROWS rows (rolled back): ${delete_ms} ms"
# Two months short of the data's span: the oldest month is then wholly past the cutoff.
run_mailtrail retention --events-older-than "$((MONTHS - 2))mo"
retention_seconds=$(seconds_of run_mailtrail retention --events-older-than "$((MONTHS - 2))mo" --yes)
echo "mailtrail retention --events-older-than $((MONTHS - 2))mo --yes: ${retention_seconds} s"
sql -At -c "SELECT 'partitions left: ' || count(*) FROM pg_inherits WHERE inhparent = 'email_events'::regclass"

echo "## 6. ingest: the worker's statement, partitioned and unpartitioned"
INGEST_EVENTS=${BENCH_INGEST_EVENTS:-100000}
ROUNDS=${BENCH_INGEST_ROUNDS:-3}
psql -q "$ADMIN_URL" -c "CREATE DATABASE $INGEST_DB"
env -i PATH="$PATH" DATABASE_URL="$INGEST_URL" "$MAILTRAIL" migrate >/dev/null
# The same table unpartitioned: same columns, key and indexes (LIKE ... INCLUDING ALL).
psql -q -v ON_ERROR_STOP=1 "$INGEST_URL" \
  -c "CREATE TABLE email_events_plain (LIKE email_events INCLUDING ALL)"
swap() { # makes email_events the partitioned ($1 = partitioned) or the plain table
  local other=plain
  [[ $1 == plain ]] && other=partitioned
  psql -q -v ON_ERROR_STOP=1 "$INGEST_URL" <<SQL
BEGIN;
ALTER TABLE email_events RENAME TO email_events_$other;
ALTER TABLE email_events_$1 RENAME TO email_events;
COMMIT;
SQL
}
ingest_round() { # prints the events/s of one --sql-baseline run on a truncated table
  psql -q "$INGEST_URL" -c "TRUNCATE email_events, sent_emails, project_rollups, system_rollups; CHECKPOINT"
  env -i PATH="$PATH" DATABASE_URL="$INGEST_URL" MAILTRAIL_SIGNING_KEYS=bench-key \
    "$MAILTRAIL_BENCH" --sql-baseline "$INGEST_EVENTS" --batch-size 1000 --json \
    | grep -oP '"per_s":\s*\K[0-9.]+'
}
current=partitioned
for round in $(seq "$ROUNDS"); do
  for layout in partitioned plain; do
    if [[ $layout != "$current" ]]; then swap "$layout"; current=$layout; fi
    echo "round $round, $layout: $(ingest_round) events/s"
  done
done
