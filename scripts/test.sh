#!/usr/bin/env bash
# scripts/test.sh: run every test (unit, integration, doc), doing all set-up first.
#
#   scripts/test.sh [CARGO TEST ARGS...]     e.g. scripts/test.sh users -- --nocapture
#
# Finds, starts or installs PostgreSQL (see scripts/lib/postgres.sh) and exports
# DATABASE_URL=$PG_ADMIN_URL/postgres unless DATABASE_URL is already set: the tests create and
# drop a fresh database per test through it, so its role needs CREATEDB (postgres has it).
# Then `cargo test --all-targets ARGS` and `cargo test --doc`; without ARGS also
# scripts/schemathesis.sh (the API fuzzed against its OpenAPI document; needs python3 and PyPI
# the first time; GATEWAY_SKIP_SCHEMATHESIS=1 skips it outside CI), scripts/typescript.sh
# (the TypeScript client: generated types current, tsc, its tests against the gateway; needs
# Node 20+ and the npm registry the first time; GATEWAY_SKIP_TYPESCRIPT=1 skips it outside CI),
# scripts/console.sh (the ops console: its committed build current, tsc, browser tests in
# headless Chromium against the gateway; installs Debian's chromium when missing;
# GATEWAY_SKIP_CONSOLE=1 skips it outside CI) and `scripts/chaos.sh --quick` (about two
# minutes of faults on the debug build, then an audit; GATEWAY_SKIP_CHAOS=1 skips it outside
# CI).
#
# Environment: DATABASE_URL; and those of scripts/lib/postgres.sh: GATEWAY_PG_WAIT_SECS,
# GATEWAY_PG_PORT, GATEWAY_PG_DIR, GATEWAY_PG_FORCE_LOCAL.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh

start=$SECONDS
step="set-up"
trap 'rc=$?; if ((rc != 0)); then echo "test.sh: FAILED in $step (exit $rc) after $((SECONDS - start))s" >&2; fi' EXIT

ensure_postgres
export DATABASE_URL="${DATABASE_URL:-$PG_ADMIN_URL/postgres}"

step="cargo test --all-targets"
cargo test --all-targets "$@"
step="cargo test --doc"
cargo test --doc
# The whole suite (no arguments, as CI runs it) also fuzzes the running gateway against its
# OpenAPI document (scripts/schemathesis.sh; about a minute once its venv exists) and tests the
# TypeScript client against it (scripts/typescript.sh; under a minute once npm has installed).
if (($# == 0)); then
  step="schemathesis"
  scripts/schemathesis.sh
  step="typescript client"
  scripts/typescript.sh
  # The ops console: its committed build is current and it works in headless Chromium against
  # the running gateway (scripts/console.sh; GATEWAY_SKIP_CONSOLE=1 skips it outside CI).
  step="console"
  scripts/console.sh
  # Everything failing at once, then an audit (README "Reliability"); it runs its own
  # throwaway Postgres cluster, so its database restart touches nothing else.
  step="chaos --quick"
  scripts/chaos.sh --quick
  echo "test.sh: all tests passed (all targets, doc tests, schemathesis, TypeScript client, console, chaos) in $((SECONDS - start))s"
else
  echo "test.sh: all tests passed (all targets and doc tests) in $((SECONDS - start))s"
fi
