#!/usr/bin/env bash
# scripts/schemathesis.sh: fuzz the running gateway against its own OpenAPI document.
#
#   scripts/schemathesis.sh [SCHEMATHESIS RUN ARGS...]
#
# Builds the debug gateway, starts it (simulators on) on a free port with a fresh database,
# and runs schemathesis (pinned, in a venv under the cargo target directory, reused when
# present) against http://127.0.0.1:PORT/openapi.json with every check (`--checks all`: no
# 5xx, documented status codes, content types, headers and response schemas, schema-valid
# data accepted and invalid data rejected, auth enforced, ...) and the development API key.
# Exits non-zero on any failure. The gateway is stopped and the database dropped on exit.
# scripts/test.sh runs it after the cargo tests.
#
# Environment:
#   SCHEMATHESIS_MAX_EXAMPLES   test cases per operation and phase (default 100)
#   SCHEMATHESIS_SEED           generation seed (default 20261129; fixed so CI is repeatable)
#   GATEWAY_SKIP_SCHEMATHESIS=1 skip the run (local runs only: ignored when CI=true)
#   DATABASE_URL, and those of scripts/lib/postgres.sh, to find Postgres.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh
# shellcheck source=scripts/lib/gateway.sh
source scripts/lib/gateway.sh

SCHEMATHESIS_VERSION=4.32.5

if [[ "${GATEWAY_SKIP_SCHEMATHESIS:-0}" == 1 ]]; then
  if [[ "${CI:-}" == true ]]; then
    echo "schemathesis: GATEWAY_SKIP_SCHEMATHESIS is ignored in CI" >&2
  else
    echo "schemathesis: skipped (GATEWAY_SKIP_SCHEMATHESIS=1)" >&2
    exit 0
  fi
fi

target_dir="${CARGO_TARGET_DIR:-target}"
work="$target_dir/schemathesis"
venv="$target_dir/schemathesis-venv"
mkdir -p "$work"

# 1. schemathesis, pinned, in its own venv (reused while it has the pinned version).
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  echo "schemathesis: installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian splits venv support out of python3.
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      rm -rf "$venv"
      apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      echo "error: python3 -m venv failed; install python3-venv" >&2
      exit 1
    fi
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# 2. The gateway: debug build (already built by `cargo test --all-targets` in scripts/test.sh),
#    simulators on, a fresh database and a free port (scripts/lib/gateway.sh).
log="$work/gateway.log"
trap test_gateway_exit_trap EXIT INT TERM
start_test_gateway schemathesis "$log"
base="$TEST_GATEWAY_URL"

# 3. The run. scripts/schemathesis.toml states the one relaxation (422 for business rules
#    on the operations that take a user).
start=$SECONDS
echo "schemathesis: $SCHEMATHESIS_VERSION against $base/openapi.json" >&2
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run "$base/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $TEST_GATEWAY_DEV_KEY" \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
  --seed "${SCHEMATHESIS_SEED:-20261129}" \
  --generation-database none \
  --request-timeout 30 \
  --wait-for-schema 30 \
  --no-color \
  --report junit --report-dir "$work" \
  "$@"
echo "schemathesis: passed in $((SECONDS - start))s" >&2

# A 5xx is also logged by the gateway; the checks above already fail on it, this says where.
if grep -q 'status=5[0-9][0-9]' "$log"; then
  echo "error: the gateway answered a 5xx during the run (see $log)" >&2
  exit 1
fi
