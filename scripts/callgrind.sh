#!/usr/bin/env bash
# scripts/callgrind.sh: instructions per request of the gateway and of its same-stack floor
# (README "Performance", profile findings). Instruction counts do not depend on how busy the
# machine is, so they compare builds where wall-clock throughput cannot.
#
#   scripts/callgrind.sh [N]    N requests of each kind per server (default 1000)
#
# Starts a standalone provider-sim, and the release gateway (JSON logs at info, as the benchmark
# runs it) and the floor under `valgrind --tool=callgrind`; creates users through the gateway,
# then for each server zeroes its counters, sends N sequential `GET /v1/users/{id}` over one
# keep-alive connection (curl), and dumps. Prints instructions per request (Ir) for each, and
# writes the dumps and `callgrind_annotate --inclusive=yes` of each to target/callgrind/.
# Builds the release binaries first (as scripts/bench.sh does) unless CALLGRIND_BUILD=0.
#
# Environment: CALLGRIND_GATEWAY_BIN (the gateway binary to measure, e.g. a copy of an older
# build), CALLGRIND_BIN_DIR (where the other binaries are [target/release]), CALLGRIND_LOG_LEVEL
# [info], CALLGRIND_BUILD [1], and those of scripts/lib/postgres.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh

n="${1:-1000}"
out=target/callgrind
mkdir -p "$out"
rm -f "$out"/*.out*
bin="${CALLGRIND_BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}"
note() { printf 'callgrind: %s\n' "$*" >&2; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
command -v valgrind >/dev/null || { echo "error: valgrind is missing (Debian: valgrind)" >&2; exit 1; }

pids=()
db=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n "$db" ]]; then
    psql -w -X -q -d "$PG_ADMIN_URL/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
      >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_postgres
db="gw_callgrind_$(date +%Y%m%d%H%M%S)"
ensure_database "$db"
if [[ -d .sqlx && -z "${SQLX_OFFLINE:-}" ]]; then
  export SQLX_OFFLINE=true
fi
if [[ "${CALLGRIND_BUILD:-1}" == 1 ]]; then
  note "building release binaries"
  cargo build --release --quiet --bin onboarding-gateway --bin provider-sim --bin bench --bin floor
fi

sim_port="$(free_port)"
"$bin/provider-sim" --port "$sim_port" --no-record >"$out/sim.log" 2>&1 &
pids+=($!)
"$bin/bench" config --sim "http://127.0.0.1:$sim_port" >"$out/gateway.toml"
gw_port="$(free_port)" floor_port="$(free_port)"
env_overrides=(
  GATEWAY_ENV=development
  GATEWAY_CONFIG_FILE="$out/gateway.toml"
  DATABASE_URL="$PG_ADMIN_URL/$db?sslmode=disable"
  GATEWAY__SERVER__PORT="$gw_port"
  GATEWAY__LOG__FORMAT=json
  GATEWAY__LOG__LEVEL="${CALLGRIND_LOG_LEVEL:-info}"
  GATEWAY__RATE_LIMIT__PER_KEY_PER_SECOND=0
  GATEWAY__WORKERS__RECONCILE_INTERVAL_SECS=0
)
grind=(valgrind --tool=callgrind --dump-instr=no --compress-strings=no)
env -u RUST_LOG "${env_overrides[@]}" "${grind[@]}" --callgrind-out-file="$out/gateway.out" \
  "${CALLGRIND_GATEWAY_BIN:-$bin/onboarding-gateway}" >"$out/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
base="http://127.0.0.1:$gw_port"
for _ in $(seq 1 600); do
  curl -fsS "$base/health/ready" >/dev/null 2>&1 && break
  kill -0 "$gw_pid" 2>/dev/null || { tail -n 20 "$out/gateway.log" >&2; exit 1; }
  sleep 0.5
done
env -u RUST_LOG "${env_overrides[@]}" "${grind[@]}" --callgrind-out-file="$out/floor.out" \
  "$bin/floor" --port "$floor_port" >"$out/floor.log" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
floor="http://127.0.0.1:$floor_port"
for _ in $(seq 1 600); do
  grep -q '^floor listening' "$out/floor.log" 2>/dev/null && break
  kill -0 "$floor_pid" 2>/dev/null || { cat "$out/floor.log" >&2; exit 1; }
  sleep 0.5
done

auth="Authorization: Bearer dev_sk_onboarding_gateway_local"
ids=()
for i in 1 2 3; do
  provider=(kraken killb carbn)
  body="$("$bin/bench" user-body "callgrind-$$" "${provider[$((i - 1))]}" "$i")"
  id="$(curl -fsS -H "$auth" -H 'content-type: application/json' -d "$body" "$base/v1/users" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  ids+=("$id")
done
note "created ${#ids[@]} users through the gateway"

# One curl, one keep-alive connection, `count` sequential GETs of the users in turn.
get_many() { # base count
  local config="$out/curl.conf" i
  : >"$config"
  for ((i = 0; i < $2; i++)); do
    printf 'url = "%s/v1/users/%s"\noutput = "/dev/null"\n' "$1" "${ids[$((i % ${#ids[@]}))]}" >>"$config"
  done
  curl -fsS -H "$auth" -K "$config"
}

# Ir of the last dump of `name` (callgrind writes name.out.1, .2, … on each -d).
last_dump() { ls -t "$out/$1".out.* | head -n 1; }
total_ir() { callgrind_annotate "$1" 2>/dev/null | sed -nE 's/^ *([0-9,]+) .*PROGRAM TOTALS.*/\1/p' | tr -d ,; }

measure() { # name pid base
  get_many "$3" 50 # warm the connection, the pool and the statement cache
  callgrind_control -z "$2" >/dev/null
  get_many "$3" "$n"
  callgrind_control -d "$2" >/dev/null
  sleep 1
  local dump ir
  dump="$(last_dump "$1")"
  ir="$(total_ir "$dump")"
  callgrind_annotate --inclusive=yes "$dump" >"$out/$1-inclusive.txt" 2>/dev/null
  printf '%-8s %12d Ir per GET /v1/users/{id} (%d requests, %s)\n' "$1" $((ir / n)) "$n" "$dump"
}

measure gateway "$gw_pid" "$base" | tee "$out/results.txt"
measure floor "$floor_pid" "$floor" | tee -a "$out/results.txt"
