#!/usr/bin/env bash
# scripts/typescript.sh: check and test the TypeScript client (clients/typescript/).
#
#   scripts/typescript.sh
#
# 1. installs its npm packages exactly as package-lock.json pins them (`npm ci`; skipped while
#    node_modules/ holds that lockfile's install), failing with one line when the npm registry
#    cannot be reached instead of hanging;
# 2. regenerates src/generated/schema.d.ts from openapi/openapi.json and fails when it differs
#    from the committed one (as the OpenAPI drift test does for the document);
# 3. type-checks the client (`tsc --noEmit`, strict, with browser types only);
# 4. builds the debug gateway, starts it (simulators on) on a fresh database and a free port
#    (scripts/lib/gateway.sh), compiles the tests with the client (`tsc`, strict, which also
#    checks test/types.test.ts's compile-time assertions) and runs them with Node's test runner
#    against that gateway, one file at a time (they share the simulators and their faults).
# scripts/test.sh runs it after the cargo tests when it runs the whole suite.
#
# Environment:
#   GATEWAY_SKIP_TYPESCRIPT=1  skip it (local runs only: ignored when CI=true)
#   NPM_CI_TIMEOUT_SECS        how long `npm ci` may take (default 300)
#   DATABASE_URL, and those of scripts/lib/postgres.sh, to find Postgres.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh
# shellcheck source=scripts/lib/gateway.sh
source scripts/lib/gateway.sh

if [[ "${GATEWAY_SKIP_TYPESCRIPT:-0}" == 1 ]]; then
  if [[ "${CI:-}" == true ]]; then
    echo "typescript: GATEWAY_SKIP_TYPESCRIPT is ignored in CI" >&2
  else
    echo "typescript: skipped (GATEWAY_SKIP_TYPESCRIPT=1)" >&2
    exit 0
  fi
fi

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: typescript: $tool is not installed (the TypeScript client needs Node 20+ and npm)" >&2
    exit 1
  fi
done

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  echo "error: typescript: Node $(node --version) is too old; the TypeScript client needs Node 20+" >&2
  exit 1
fi

target_dir="${CARGO_TARGET_DIR:-target}"
work="$target_dir/typescript"
mkdir -p "$work"
client=clients/typescript
start=$SECONDS

# 1. The npm packages, as package-lock.json pins them (scripts/lib/npm.sh).
# shellcheck source=scripts/lib/npm.sh
source scripts/lib/npm.sh
npm_ci_from_lock "$client" typescript "$work/npm-ci.log" || exit 1

# 2. The generated types match the OpenAPI document.
if ! (cd "$client" && npm run --silent generate:check) >"$work/generate.log" 2>&1; then
  echo "error: typescript: $client/src/generated/schema.d.ts differs from what openapi/openapi.json" \
    "generates: run \`npm --prefix $client run generate\` and commit the result" >&2
  exit 1
fi

# 3. Strict type-check of the client alone, with the DOM's types and no Node types: it must run
#    in a browser (the console bundles it). The tests are type-checked when they are compiled.
(cd "$client" && npm run --silent check)

# 4. The tests, against a real gateway.
log="$work/gateway.log"
trap test_gateway_exit_trap EXIT INT TERM
# Two attempts with short delays: test/ops.test.ts waits for a job to fail, then re-drives it.
GATEWAY__WORKERS__MAX_ATTEMPTS=2 GATEWAY__WORKERS__RETRY_BASE_MS=50 \
  start_test_gateway typescript "$log"

rm -rf "$client/build"
(cd "$client" && npm run --silent build)
(cd "$client" && GATEWAY_TEST_URL="$TEST_GATEWAY_URL" GATEWAY_TEST_API_KEY="$TEST_GATEWAY_DEV_KEY" \
  node --test --test-concurrency=1 build/test/*.test.js)

# A 5xx is logged by the gateway; no test should have caused one.
if grep -q 'status=5[0-9][0-9]' "$log"; then
  echo "error: typescript: the gateway answered a 5xx during the tests (see $log)" >&2
  exit 1
fi
echo "typescript: generated types current, tsc clean, tests passed in $((SECONDS - start))s" >&2
