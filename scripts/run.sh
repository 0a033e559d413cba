#!/usr/bin/env bash
# scripts/run.sh: run the gateway locally, doing all set-up first.
#
#   scripts/run.sh [--debug] [ARGS...]
#
# Finds, starts or installs PostgreSQL (see scripts/lib/postgres.sh), creates the database
# `gateway` on it, then builds and runs the gateway with `cargo run --release`; ARGS go to the
# gateway. The gateway applies its migrations at start-up; GATEWAY_ENV defaults to
# `development` (built-in provider simulators on).
#
#   --debug   build and run a debug build instead of a release build (builds much faster)
#
# Environment:
#   DATABASE_URL      use this database as is (nothing is created); default
#                     $PG_ADMIN_URL/$GATEWAY_DB_NAME on the server ensure_postgres found
#   GATEWAY_DB_NAME   database to create and use when DATABASE_URL is unset (default gateway)
#   GATEWAY_ENV       configuration environment (default development)
#   SQLX_OFFLINE      set to true when .sqlx/ exists (query! macros use the committed cache)
#   and those of scripts/lib/postgres.sh: GATEWAY_PG_WAIT_SECS, GATEWAY_PG_PORT,
#   GATEWAY_PG_DIR, GATEWAY_PG_FORCE_LOCAL.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh

profile=(--release)
if [[ "${1:-}" == --debug ]]; then
  profile=()
  shift
fi

ensure_postgres
if [[ -z "${DATABASE_URL:-}" ]]; then
  db="${GATEWAY_DB_NAME:-gateway}"
  ensure_database "$db"
  export DATABASE_URL="$PG_ADMIN_URL/$db"
fi
export GATEWAY_ENV="${GATEWAY_ENV:-development}"
if [[ -d .sqlx && -z "${SQLX_OFFLINE:-}" ]]; then
  export SQLX_OFFLINE=true
fi

exec cargo run "${profile[@]}" --bin onboarding-gateway -- "$@"
