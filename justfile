# mailtrail: what happened to every email you sent through Mailgun.
# `just dev` starts everything and shows it working; `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

corpus := env_var_or_default("MAILTRAIL_CORPUS_DIR", "../shared/mailgun-corpus")

# List the recipes.
default:
    @just --list

# Start Postgres, Redis, receiver and worker, send signed samples, print the deliverability table.
dev:
    scripts/dev.sh

# Stop the receiver, worker and API started by `just dev` (and throwaway Postgres/Redis under .dev/).
stop:
    -@[ -f .dev/receiver.pid ] && kill "$(cat .dev/receiver.pid)" 2>/dev/null; rm -f .dev/receiver.pid
    -@[ -f .dev/worker.pid ] && kill "$(cat .dev/worker.pid)" 2>/dev/null; rm -f .dev/worker.pid
    -@[ -f .dev/api.pid ] && kill "$(cat .dev/api.pid)" 2>/dev/null; rm -f .dev/api.pid
    scripts/services.sh stop

# Run every test against the real Postgres and Redis (started if needed).
test:
    scripts/services.sh ensure
    MAILTRAIL_CORPUS_DIR="{{corpus}}" cargo test --workspace

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: baselines, receiver, worker, end to end; summary in target/bench/summary.md.
bench:
    scripts/bench.sh

# The partitioned events table at size (13 months of events): migration, timeline pruning,
# erase, retention; the figures docs/scaling.md quotes. Knobs: BENCH_EVENTS_PER_MONTH, ...
bench-partitions:
    scripts/bench-partitions.sh

# Chaos (not part of `test`; minutes, release build): 100,000 signed webhooks while workers,
# receiver and Redis are killed -9 and Postgres refuses connections for a minute; then checks
# every accepted webhook landed exactly once. Knobs: CHAOS_N, CHAOS_RATE, ... (scripts/chaos.sh).
chaos:
    scripts/chaos.sh

# The load generator alone, with any of its flags (`just load --help`; release build).
load *args:
    cargo run --quiet --release --bin mailtrail-bench -- {{args}}

# Check the systemd units with systemd-analyze verify (when installed).
verify-units:
    cargo build --bins --quiet
    scripts/verify-units.sh

# Apply pending migrations to DATABASE_URL.
migrate:
    cargo run --quiet --bin mailtrail -- migrate

# Envelopes waiting in the backlog of an unsharded queue (redis-cli; the tag is the prefix
# without its `:`, see crates/mailtrail-queue/src/keys.rs).
backlog tag="mailtrail":
    redis-cli LLEN "{"{{tag}}"}:events"

# The oldest waiting envelope, as queued (redis-cli).
oldest tag="mailtrail":
    redis-cli LRANGE "{"{{tag}}"}:events" -1 -1

# Dead letters, newest first (redis-cli).
dead tag="mailtrail" count="10":
    redis-cli LRANGE "{"{{tag}}"}:dead" 0 {{count}}

# Fuzz one parser (json_webhook, form_webhook, multipart_webhook) for a bounded time.
fuzz target="json_webhook" seconds="60":
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {{target}} -- -max_total_time={{seconds}}
