# shellcheck shell=bash
# scripts/lib/gateway.sh: run the debug gateway, simulators on, on a fresh database and a free
# port, for the scripts that test it from outside (schemathesis.sh, typescript.sh).
#
# Source it after scripts/lib/postgres.sh (from the repository root), then call:
#   start_test_gateway NAME LOG  builds the debug binary (cargo build --bin onboarding-gateway;
#                                a no-op when it is fresh), creates database gateway_NAME_<pid>,
#                                starts the gateway on it (development settings, rate limits
#                                off, log level warn, output to LOG) and waits for
#                                /health/ready. Sets TEST_GATEWAY_URL (http://127.0.0.1:PORT),
#                                TEST_GATEWAY_PID and TEST_GATEWAY_DB.
#   stop_test_gateway            stops that gateway and drops its database; safe to call twice
#                                and before start
#   test_gateway_exit_trap       for `trap test_gateway_exit_trap EXIT INT TERM` (set before
#                                start): stop_test_gateway, and on failure say where LOG is
# TEST_GATEWAY_DEV_KEY is the development API key that gateway accepts.
#
# The functions return non-zero on failure (after an "error:" line on stderr) and never exit.

TEST_GATEWAY_DEV_KEY=dev_sk_onboarding_gateway_local
TEST_GATEWAY_URL=""
TEST_GATEWAY_PID=""
TEST_GATEWAY_DB=""
TEST_GATEWAY_LOG=""

start_test_gateway() {
  local name=$1 log=$2
  TEST_GATEWAY_LOG=$log
  if [[ -d .sqlx && -z "${SQLX_OFFLINE:-}" ]]; then
    export SQLX_OFFLINE=true
  fi
  cargo build --quiet --bin onboarding-gateway || return 1
  local gateway="${CARGO_TARGET_DIR:-target}/debug/onboarding-gateway"

  ensure_postgres || return 1
  TEST_GATEWAY_DB="gateway_${name}_$$"
  ensure_database "$TEST_GATEWAY_DB" || return 1
  local port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

  GATEWAY_ENV=development \
    DATABASE_URL="$PG_ADMIN_URL/$TEST_GATEWAY_DB" \
    GATEWAY__SERVER__HOST=127.0.0.1 \
    GATEWAY__SERVER__PORT="$port" \
    GATEWAY__RATE_LIMIT__PER_KEY_PER_SECOND=1000000 \
    GATEWAY__RATE_LIMIT__BURST=1000000 \
    GATEWAY__RATE_LIMIT__WEBHOOK_PER_SECOND=1000000 \
    GATEWAY__RATE_LIMIT__WEBHOOK_BURST=1000000 \
    GATEWAY__LOG__LEVEL=warn \
    "$gateway" >"$log" 2>&1 &
  TEST_GATEWAY_PID=$!
  TEST_GATEWAY_URL="http://127.0.0.1:$port"

  # Migrations run at start-up; a cold debug build on a busy machine takes some seconds.
  local _
  for _ in $(seq 1 120); do
    if ! kill -0 "$TEST_GATEWAY_PID" 2>/dev/null; then
      echo "error: the gateway exited during start-up:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "$TEST_GATEWAY_URL/health/ready" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "error: the gateway was not ready after 60 s (log: $log)" >&2
  return 1
}

stop_test_gateway() {
  if [[ -n "$TEST_GATEWAY_PID" ]] && kill -0 "$TEST_GATEWAY_PID" 2>/dev/null; then
    kill "$TEST_GATEWAY_PID" 2>/dev/null || true
    wait "$TEST_GATEWAY_PID" 2>/dev/null || true
  fi
  TEST_GATEWAY_PID=""
  if [[ -n "$TEST_GATEWAY_DB" ]]; then
    psql -w -X -q -d "$PG_ADMIN_URL/postgres" \
      -c "drop database if exists \"$TEST_GATEWAY_DB\" with (force)" </dev/null >/dev/null 2>&1 || true
  fi
  TEST_GATEWAY_DB=""
}

test_gateway_exit_trap() {
  local rc=$?
  stop_test_gateway
  if ((rc != 0)) && [[ -n "$TEST_GATEWAY_LOG" && -f "$TEST_GATEWAY_LOG" ]]; then
    echo "$(basename "$0" .sh): the gateway's log is in $TEST_GATEWAY_LOG" >&2
  fi
  exit "$rc"
}
