#!/usr/bin/env bash
# scripts/chaos.sh: everything failing at once, then an audit (README "Reliability").
#
#   scripts/chaos.sh [--quick]
#
# Starts its own throwaway Postgres cluster (under /tmp, so that restarting it harms
# nothing else; scripts/lib/postgres.sh), builds the binaries, starts a standalone provider-sim,
# then `chaos` (src/bin/chaos.rs) starts two gateway instances on one database, two notification
# subscribers and a careful client's load, and applies faults on a schedule drawn from a fixed
# seed: kill -9 of an instance every 20-40 s (started again), one immediate Postgres restart,
# each provider down (connection reset after the request was read), slow (2 s) and answering 5xx
# at 30%, and one subscriber failing. Then the faults stop, the queue drains, a reconciliation
# pass runs and the audit prints one table (also target/chaos/results.json). Exit status 1 when
# anything was lost or duplicated. Everything it started is stopped on exit.
#
#   --quick   about two minutes on the debug build (what scripts/test.sh runs): 80 s of faults,
#             the fault durations scaled down to fit (kills stay every 20-40 s)
#   default   about ten minutes on the release build: 480 s of faults, then up to 120 s drain
#
# Environment (defaults in brackets; --quick lowers them):
#   CHAOS_FAULT_SECS [480]  seconds of load and faults
#   CHAOS_DRAIN_SECS [120]  how long the queue gets to drain afterwards
#   CHAOS_SEED [14]         the schedule's seed (same seed, same schedule)
#   CHAOS_CLIENTS [12]      concurrent client tasks
#   CHAOS_KEEP_DB=1         keep the database (and leave the cluster running) afterwards
#   GATEWAY_SKIP_CHAOS=1    skip the run (local runs only: ignored when CI=true)
#   CHAOS_SHARED_PG=1       use the server scripts/lib/postgres.sh finds (DATABASE_URL, 5432)
#                           instead of a throwaway cluster; the Postgres restart is then skipped
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${GATEWAY_SKIP_CHAOS:-0}" == 1 ]]; then
  if [[ "${CI:-}" == true ]]; then
    echo "chaos: GATEWAY_SKIP_CHAOS is ignored in CI" >&2
  else
    echo "chaos: skipped (GATEWAY_SKIP_CHAOS=1)" >&2
    exit 0
  fi
fi
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh

profile=release
if [[ "${1:-}" == --quick ]]; then
  profile=debug
  : "${CHAOS_FAULT_SECS:=80}" "${CHAOS_DRAIN_SECS:=60}" "${CHAOS_CLIENTS:=8}"
  shift
fi
if [[ $# -gt 0 ]]; then
  echo "usage: scripts/chaos.sh [--quick]" >&2
  exit 2
fi
export CHAOS_FAULT_SECS="${CHAOS_FAULT_SECS:-480}" CHAOS_DRAIN_SECS="${CHAOS_DRAIN_SECS:-120}"
export CHAOS_SEED="${CHAOS_SEED:-14}" CHAOS_CLIENTS="${CHAOS_CLIENTS:-12}"

out=target/chaos
mkdir -p "$out"
rm -f "$out"/gateway-*.log
bin="${CARGO_TARGET_DIR:-target}/$profile"
note() { printf 'chaos: %s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pids=()
db=""
own_cluster=0
pg_parent=""
pids_file="$out/gateway.pids"
cleanup() {
  local pid
  if [[ -f "$pids_file" ]]; then
    while read -r pid; do
      [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
    done <"$pids_file"
    rm -f "$pids_file"
  fi
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$db" && "${CHAOS_KEEP_DB:-0}" != 1 ]]; then
    psql -w -X -q -d "$PG_ADMIN_URL/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
      >/dev/null 2>&1 || true
    if ((own_cluster)); then
      stop_local_postgres || true
      rm -rf "$pg_parent"
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Postgres: a throwaway cluster of our own, so that restarting it harms no one ---
pg_restart=""
if [[ "${CHAOS_SHARED_PG:-0}" != 1 ]] && bindir="$(_pg_server_bindir)" && [[ -n "$bindir" ]]; then
  unset DATABASE_URL
  # Under /tmp, not target/: the postgres user must reach the data directory, and a checkout
  # may sit below a directory only root can enter (CI's copy lives in a mktemp -d folder).
  pg_parent="${TMPDIR:-/tmp}/onboarding-gateway-chaos-$(printf '%s' "$PWD" | cksum | cut -d' ' -f1)"
  export GATEWAY_PG_FORCE_LOCAL=1 GATEWAY_PG_DIR="$pg_parent/pg"
  GATEWAY_PG_PORT="${CHAOS_PG_PORT:-$(free_port)}"
  export GATEWAY_PG_PORT
  ensure_postgres
  own_cluster=1
  owner=()
  if _pg_is_root; then owner=(runuser -u postgres --); fi
  ver="$(cat "$GATEWAY_PG_DIR/PG_VERSION")"
  # pg_ctl restart replays the options the server was started with (port, socket dir).
  pg_restart="${owner[*]} /usr/lib/postgresql/$ver/bin/pg_ctl -D '$GATEWAY_PG_DIR' -l '$GATEWAY_PG_DIR/log' -m immediate -w -t 60 restart"
else
  ensure_postgres
  note "no throwaway cluster: the Postgres restart is skipped"
fi
db="gw_chaos_$(date +%Y%m%d%H%M%S)"
ensure_database "$db"

note "building $profile binaries"
if [[ -d .sqlx && -z "${SQLX_OFFLINE:-}" ]]; then
  export SQLX_OFFLINE=true
fi
release_flag=()
[[ "$profile" == release ]] && release_flag=(--release)
cargo build "${release_flag[@]}" --quiet --bin onboarding-gateway --bin provider-sim --bin bench --bin chaos

# --- the simulator ---
sim_port="$(free_port)"
"$bin/provider-sim" --port "$sim_port" --review-delay-secs 2 --no-record >"$out/sim.log" 2>&1 &
pids+=($!)
sim_url="http://127.0.0.1:$sim_port"
for _ in $(seq 1 100); do
  curl -fsS "$sim_url/_sim/health" >/dev/null 2>&1 && break
  sleep 0.1
done

# --- the gateways' configuration: the simulator's credentials, two subscribers ---
sub_ports=("$(free_port)" "$(free_port)")
sub_secret="chaos-subscriber-secret"
{
  "$bin/bench" config --sim "$sim_url"
  printf '\n[notifications]\n'
  for port in "${sub_ports[@]}"; do
    printf '\n[[notifications.subscribers]]\nurl = "http://127.0.0.1:%s/notifications"\nsecret = "%s"\n' "$port" "$sub_secret"
    printf 'events = ["user.created", "user.updated", "user.status_changed", "link.submission_failed", "document.rejected"]\n'
  done
} >"$out/gateway.toml"

gw_ports="$(free_port),$(free_port)"
export GATEWAY_ENV=development GATEWAY_CONFIG_FILE="$out/gateway.toml"
export DATABASE_URL="$PG_ADMIN_URL/$db?sslmode=disable"
export GATEWAY__LOG__FORMAT=json GATEWAY__LOG__LEVEL="${CHAOS_LOG_LEVEL:-info}"
export GATEWAY__RATE_LIMIT__PER_KEY_PER_SECOND=0
# Retries capped at 15 s (default 300 s) so the queue drains within the run once the faults
# stop; 12 attempts outlast the longest provider fault (a minute of 30% errors).
export GATEWAY__WORKERS__RETRY_MAX_SECS=15 GATEWAY__WORKERS__MAX_ATTEMPTS=12
# The poller runs during the faults too (and its lock survives kills); the audit runs its own pass.
export GATEWAY__WORKERS__RECONCILE_INTERVAL_SECS=60
unset RUST_LOG

export CHAOS_SIM_URL="$sim_url" CHAOS_GATEWAY_BIN="$bin/onboarding-gateway"
export CHAOS_GATEWAY_PORTS="$gw_ports" CHAOS_DATABASE_URL="$DATABASE_URL"
export CHAOS_PG_RESTART="$pg_restart" CHAOS_SUBSCRIBER_PORTS="${sub_ports[0]},${sub_ports[1]}"
export CHAOS_SUBSCRIBER_SECRET="$sub_secret" CHAOS_OUT="$out/results.json" CHAOS_LOG_DIR="$out"
export CHAOS_PIDS_FILE="$pids_file"
note "simulator $sim_url, gateways on ports $gw_ports, database $db"
set +e
"$bin/chaos" | tee "$out/results.txt"
status=${PIPESTATUS[0]}
set -e
exit "$status"
