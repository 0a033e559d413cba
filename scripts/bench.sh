#!/usr/bin/env bash
# scripts/bench.sh: the benchmark in one command (README "Performance").
#
#   scripts/bench.sh [--quick]
#
# Finds or starts Postgres (scripts/lib/postgres.sh), creates fresh databases, builds the
# release binaries, measures the machine's own ceiling with pgbench (select by primary key; a
# transaction persisting one user, one link, one job and one event, as a create does), starts a
# standalone provider-sim, the gateway (release, JSON logs at info) and the same-stack floor
# (src/bin/floor.rs: the gateway's reads and create with none of its layers), then runs `bench run`:
# seeding through the API and real HTTP load from a separate process. Prints one table and
# writes target/bench/results.json (plus results.txt and the gateway/sim logs). Everything it
# started is stopped on exit; the databases are dropped unless BENCH_KEEP_DB=1. After the soak,
# scenario 8 uploads 1 MiB documents (8 in flight) and 8b sends 32 uploads of documents.max_bytes
# at once, checking that the gateway's RSS follows its upload slots (scenario 7's RSS target is
# read before them).
#
#   --quick   a smoke run: 3 s per scenario, 15 s soak, 300 seeded users, 2 rounds of 8b
#
# Environment (defaults in brackets; --quick lowers them):
#   BENCH_SECS [20]          measured seconds per scenario (after a short warm-up)
#   BENCH_SOAK_SECS [300]    soak length; RSS is compared at min(60 s, soak/5) and at the end
#   BENCH_SOAK_RATE [200]    requests/s during the soak (20% create, 10% patch, 10% list, 60% get)
#   BENCH_SEED_USERS [3000]  users created through the API before the scenarios
#   BENCH_PGBENCH_SECS       seconds per pgbench run [BENCH_SECS]
#   BENCH_DB_POOL            gateway database.max_connections [config default]
#   BENCH_LOG_LEVEL [info]   gateway log level (logs go to target/bench/gateway.log)
#   BENCH_PG_SSLMODE [disable]  sslmode of the gateway's and pgbench's database connections
#   BENCH_KEEP_DB=1          keep the databases afterwards
#   BENCH_PGBENCH=0          skip pgbench (profiling runs; no ratios then)
#   BENCH_UPLOAD_ROUNDS [3]  scenario 8b: how many times 32 uploads of documents.max_bytes go at once
#   BENCH_UPLOAD_PROVIDERS=carbn  scenarios 8, 8b upload only to users at these (profiling: at
#                            Carbn an upload is stored and sent nowhere)
#   BENCH_SCENARIOS=1,3      run only these scenarios (profiling; 8 and 8b are ids too; 1, 2 and 3
#                            also run against the floor, as 1f, 2f, 3f-…)
#   BENCH_FLOOR=0            do not start the floor (no floor ratios then)
#   BENCH_GATEWAY_BIN        the gateway binary to measure [target/release/onboarding-gateway]
#                            (a before/after comparison in one sitting: keep a copy of the old one)
#   and those of scripts/lib/postgres.sh (DATABASE_URL names the server to use).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh

if [[ "${1:-}" == --quick ]]; then
  export BENCH_QUICK=1
  : "${BENCH_SECS:=3}" "${BENCH_SOAK_SECS:=15}" "${BENCH_SEED_USERS:=300}"
  shift
fi
if [[ $# -gt 0 ]]; then
  echo "usage: scripts/bench.sh [--quick]" >&2
  exit 2
fi
export BENCH_SECS="${BENCH_SECS:-20}" BENCH_SOAK_SECS="${BENCH_SOAK_SECS:-300}"
export BENCH_SEED_USERS="${BENCH_SEED_USERS:-3000}"
pgbench_secs="${BENCH_PGBENCH_SECS:-$BENCH_SECS}"

out=target/bench
mkdir -p "$out"
bin="${CARGO_TARGET_DIR:-target}/release"
note() { printf 'bench: %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pids=()
db="" pgb_db=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$db" && "${BENCH_KEEP_DB:-0}" != 1 ]]; then
    psql -w -X -q -d "$PG_ADMIN_URL/postgres" \
      -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
      -c "DROP DATABASE IF EXISTS $pgb_db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_postgres
command -v pgbench >/dev/null || { echo "error: pgbench is missing (Debian: postgresql-client)" >&2; exit 1; }
stamp="$(date +%Y%m%d%H%M%S)"
db="gw_bench_$stamp" pgb_db="gw_bench_${stamp}_pgb"
ensure_database "$db"
ensure_database "$pgb_db"

note "building release binaries"
if [[ -d .sqlx && -z "${SQLX_OFFLINE:-}" ]]; then
  export SQLX_OFFLINE=true
fi
cargo build --release --quiet --bin onboarding-gateway --bin provider-sim --bin bench --bin floor

# Same connection settings for pgbench and the gateway: loopback without TLS by default, so the
# comparison does not depend on the server's ssl setting (BENCH_PG_SSLMODE=prefer to include it).
sslmode="${BENCH_PG_SSLMODE:-disable}"

# --- pgbench: the machine's own ceiling, same Postgres, same concurrency (32 clients) ---
if [[ "${BENCH_PGBENCH:-1}" == 1 ]]; then
pgb_url="$PG_ADMIN_URL/$pgb_db?sslmode=$sslmode"
profile='{"type": "individual", "email": "bench.1+approve@example.com", "phone": "+4915100000001", "name": {"first": "Bench", "last": "User1"}, "date_of_birth": "1990-01-15", "nationalities": ["DE"], "address": {"line1": "Invalidenstr. 1", "city": "Berlin", "region": "BE", "postal_code": "10115", "country": "DE"}, "identity_document": {"type": "passport", "number": "C00000001", "issuing_country": "DE"}, "employment": {"status": "employed", "industry": "computers_and_it", "occupation": "Software Engineer", "employer_name": "Acme GmbH"}, "terms": {"version": 3, "accepted_at": "2026-11-01T09:30:00Z"}, "external_id": "bench-1"}'
note "pgbench: preparing tables (the shape of users, provider_links, jobs, user_events)"
psql -w -X -q -v ON_ERROR_STOP=1 -d "$pgb_url" >/dev/null <<SQL
CREATE TABLE pb_users (
    id uuid PRIMARY KEY, external_id text NOT NULL UNIQUE, email text NOT NULL,
    status text NOT NULL DEFAULT 'pending_submission', profile jsonb NOT NULL,
    version bigint NOT NULL DEFAULT 1, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON pb_users (lower(email), id);
CREATE INDEX ON pb_users (status, id);
CREATE TABLE pb_links (
    user_id uuid NOT NULL REFERENCES pb_users (id) ON DELETE CASCADE, provider text NOT NULL,
    provider_user_id text, status text NOT NULL DEFAULT 'pending_submission', provider_status text,
    requirements jsonb NOT NULL DEFAULT '[]', last_error jsonb, submitted_at timestamptz,
    last_synced_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), provider_data jsonb NOT NULL DEFAULT '{}',
    needs_review boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, provider), UNIQUE (provider, provider_user_id));
CREATE INDEX ON pb_links (provider, status);
CREATE TABLE pb_jobs (
    id uuid PRIMARY KEY, kind text NOT NULL, queue_key text, payload jsonb NOT NULL DEFAULT '{}',
    state text NOT NULL DEFAULT 'queued', attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 8, run_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz, locked_by text, last_error text,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    outcome_unknown boolean NOT NULL DEFAULT false,
    CHECK (state IN ('queued', 'running', 'succeeded', 'failed')));
CREATE INDEX ON pb_jobs (run_at) WHERE state IN ('queued', 'running');
CREATE INDEX ON pb_jobs (state, updated_at);
CREATE INDEX ON pb_jobs (queue_key, created_at) WHERE state IN ('queued', 'running');
CREATE TABLE pb_events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id uuid NOT NULL UNIQUE,
    user_id uuid NOT NULL REFERENCES pb_users (id) ON DELETE CASCADE, type text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(), data jsonb NOT NULL DEFAULT '{}');
CREATE INDEX ON pb_events (user_id, seq);
INSERT INTO pb_users (id, external_id, email, profile)
    SELECT md5('s' || g)::uuid, 'seed-' || g, 'seed.' || g || '@example.com', '$profile'::jsonb
      FROM generate_series(1, 100000) g;
VACUUM ANALYZE;
SQL
cat >"$out/pgbench-select.sql" <<'SQL'
\set k random(1, 100000)
SELECT id, external_id, email, status, profile, version, created_at, updated_at
  FROM pb_users WHERE id = md5('s' || :k)::uuid;
SQL
cat >"$out/pgbench-persist.sql" <<SQL
\\set k random(1, 1000000000000000)
BEGIN;
INSERT INTO pb_users (id, external_id, email, status, profile)
  VALUES (md5('u' || :k::text)::uuid, 'pgb-' || :k::text, 'bench.' || :k::text || '@example.com',
          'pending_submission', '$profile'::jsonb)
  RETURNING id, external_id, email, status, profile, version, created_at, updated_at;
INSERT INTO pb_links (user_id, provider) VALUES (md5('u' || :k::text)::uuid, 'carbn');
INSERT INTO pb_jobs (id, kind, queue_key, payload, max_attempts, run_at)
  VALUES (md5('j' || :k::text)::uuid, 'submit_link', 'link' || chr(58) || :k::text || chr(58) || 'carbn',
          jsonb_build_object('user_id', md5('u' || :k::text)::uuid, 'provider', 'carbn'), 8,
          now() + interval '5 seconds');
INSERT INTO pb_events (id, user_id, type, data)
  VALUES (md5('e' || :k::text)::uuid, md5('u' || :k::text)::uuid, 'user_created',
          '{"source": "api", "providers": ["carbn"]}');
COMMIT;
SQL
run_pgbench() { # script -> tps
  local log="$out/pgbench-$1.log"
  pgbench -n -M prepared -c 32 -j 2 -T "$pgbench_secs" -f "$out/pgbench-$1.sql" "$pgb_url" \
    >"$log" 2>&1 || { cat "$log" >&2; return 1; }
  sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$log" | head -n 1
}
note "pgbench: select by key, 32 clients, ${pgbench_secs} s"
BENCH_PGBENCH_SELECT_TPS="$(run_pgbench select)"
note "pgbench: persist user+link+job+event, 32 clients, ${pgbench_secs} s"
BENCH_PGBENCH_PERSIST_TPS="$(run_pgbench persist)"
export BENCH_PGBENCH_SELECT_TPS BENCH_PGBENCH_PERSIST_TPS
note "pgbench: select $BENCH_PGBENCH_SELECT_TPS tps, persist $BENCH_PGBENCH_PERSIST_TPS tps"
fi

# --- the simulators and the gateway ---
sim_port="$(free_port)"
"$bin/provider-sim" --port "$sim_port" --no-record >"$out/sim.log" 2>&1 &
pids+=($!)
export BENCH_SIM_URL="http://127.0.0.1:$sim_port"
# Scenario 5 slows one provider's create call by 300 ms: KillB's, a single POST.
export BENCH_LATENCY_PROVIDER="${BENCH_LATENCY_PROVIDER:-killb}" BENCH_LATENCY_PATH="${BENCH_LATENCY_PATH:-/api/v2/users}"
"$bin/bench" config --sim "$BENCH_SIM_URL" >"$out/gateway.toml"

gw_port="$(free_port)"
env_overrides=(
  GATEWAY_ENV=development
  GATEWAY_CONFIG_FILE="$out/gateway.toml"
  DATABASE_URL="$PG_ADMIN_URL/$db?sslmode=$sslmode"
  GATEWAY__SERVER__PORT="$gw_port"
  GATEWAY__LOG__FORMAT=json
  GATEWAY__LOG__LEVEL="${BENCH_LOG_LEVEL:-info}"
  # The load is one API key far above the default per-key limit: no 429s in the figures.
  GATEWAY__RATE_LIMIT__PER_KEY_PER_SECOND=0
  # The scenarios measure the request paths. A reconciliation pass over the tens of thousands
  # of non-final links the run creates (every 300 s by default) would land in the middle of
  # the soak and measure itself instead (an earlier run's soak collapsed under one).
  # BENCH_RECONCILE_SECS=300 puts it back.
  GATEWAY__WORKERS__RECONCILE_INTERVAL_SECS="${BENCH_RECONCILE_SECS:-0}"
)
if [[ -n "${BENCH_DB_POOL:-}" ]]; then
  env_overrides+=(GATEWAY__DATABASE__MAX_CONNECTIONS="$BENCH_DB_POOL")
fi
env -u RUST_LOG "${env_overrides[@]}" "${BENCH_GATEWAY_BIN:-$bin/onboarding-gateway}" >"$out/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
export BENCH_BASE_URL="http://127.0.0.1:$gw_port" BENCH_GATEWAY_PID="$gw_pid"
for _ in $(seq 1 150); do
  if curl -fsS "$BENCH_BASE_URL/health/ready" >/dev/null 2>&1; then
    break
  fi
  if ! kill -0 "$gw_pid" 2>/dev/null; then
    tail -n 20 "$out/gateway.log" >&2
    echo "error: the gateway exited (log above)" >&2
    exit 1
  fi
  sleep 0.2
done
note "gateway $BENCH_BASE_URL (pid $gw_pid), simulators $BENCH_SIM_URL"

# The floor: same settings, database (migrated by the gateway above) and simulators.
if [[ "${BENCH_FLOOR:-1}" == 1 ]]; then
  floor_port="$(free_port)"
  env -u RUST_LOG "${env_overrides[@]}" "$bin/floor" --port "$floor_port" >"$out/floor.log" 2>&1 &
  floor_pid=$!
  pids+=("$floor_pid")
  for _ in $(seq 1 150); do
    grep -q '^floor listening' "$out/floor.log" 2>/dev/null && break
    if ! kill -0 "$floor_pid" 2>/dev/null; then
      cat "$out/floor.log" >&2
      echo "error: the floor exited (log above)" >&2
      exit 1
    fi
    sleep 0.2
  done
  export BENCH_FLOOR_URL="http://127.0.0.1:$floor_port" BENCH_FLOOR_PID="$floor_pid"
  note "floor $BENCH_FLOOR_URL (pid $floor_pid)"
fi
BENCH_CLK_TCK="$(getconf CLK_TCK)"
export BENCH_CLK_TCK

export BENCH_OUT="$out/results.json"
"$bin/bench" run | tee "$out/results.txt"
curl -fsS "$BENCH_BASE_URL/metrics" >"$out/metrics.txt" 2>/dev/null || true
