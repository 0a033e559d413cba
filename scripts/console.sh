#!/usr/bin/env bash
# scripts/console.sh: check and test the ops console (console/, served at /console).
#
#   scripts/console.sh
#
# 1. installs console/'s npm packages exactly as its package-lock.json pins them (esbuild,
#    TypeScript, openapi-fetch, playwright-core), with one clear line when the registry cannot
#    be reached (scripts/lib/npm.sh);
# 2. type-checks the console with the typed client it bundles (`tsc --noEmit`) and fails when
#    the committed console/dist differs from a fresh build (`node build.mjs --check`);
# 3. installs Debian's chromium when /usr/bin/chromium is missing (as root with apt-get);
# 4. starts the debug gateway (simulators on) on a fresh database and a free port
#    (scripts/lib/gateway.sh) with three API keys made for this run (console-ops: users:read +
#    ops; console-reader: users:read; console-setup: all, for the tests' own set-up), and runs
#    the browser tests (console/tests, Node's test runner, playwright-core driving headless
#    Chromium). Screenshots of each page go to target/console-screenshots/.
# scripts/test.sh runs it when it runs the whole suite.
#
# Environment:
#   GATEWAY_SKIP_CONSOLE=1  skip it (local runs only: ignored when CI=true)
#   NPM_CI_TIMEOUT_SECS     how long `npm ci` may take (default 300)
#   CHROMIUM                the browser to drive (default /usr/bin/chromium)
#   DATABASE_URL, and those of scripts/lib/postgres.sh, to find Postgres.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh
# shellcheck source=scripts/lib/gateway.sh
source scripts/lib/gateway.sh
# shellcheck source=scripts/lib/npm.sh
source scripts/lib/npm.sh

if [[ "${GATEWAY_SKIP_CONSOLE:-0}" == 1 ]]; then
  if [[ "${CI:-}" == true ]]; then
    echo "console: GATEWAY_SKIP_CONSOLE is ignored in CI" >&2
  else
    echo "console: skipped (GATEWAY_SKIP_CONSOLE=1)" >&2
    exit 0
  fi
fi

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: console: $tool is not installed (the console's build and tests need Node 20+ and npm)" >&2
    exit 1
  fi
done

target_dir="${CARGO_TARGET_DIR:-target}"
work="$target_dir/console"
screenshots="$target_dir/console-screenshots"
mkdir -p "$work" "$screenshots"
screenshots="$(cd "$screenshots" && pwd)"
start=$SECONDS

# 1. The npm packages.
npm_ci_from_lock console console "$work/npm-ci.log"

# 2. Types, and the committed build.
(cd console && npm run --silent typecheck)
(cd console && node build.mjs --check)

# 3. The browser.
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "console: installing Debian's chromium" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
      >"$work/apt.log" 2>&1; then
      echo "error: console: apt-get install chromium failed (log: $work/apt.log)" >&2
      exit 1
    fi
  else
    echo "error: console: $chromium is missing; install Debian's chromium package (or set CHROMIUM)" >&2
    exit 1
  fi
fi

# 4. Keys for this run only (random, so none is committed), the gateway, the tests.
key() { printf 'console_%s_%s' "$1" "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }
hash() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
ops_key="$(key ops)"
read_key="$(key read)"
setup_key="$(key setup)"
keys="$work/keys.toml"
cat >"$keys" <<TOML
# Written by scripts/console.sh for one run (the keys themselves are only in its environment).
[[auth.api_keys]]
name = "console-ops"
key_sha256 = "$(hash "$ops_key")"
scopes = ["users:read", "ops"]

[[auth.api_keys]]
name = "console-reader"
key_sha256 = "$(hash "$read_key")"
scopes = ["users:read"]

[[auth.api_keys]]
name = "console-setup"
key_sha256 = "$(hash "$setup_key")"
scopes = ["users:read", "users:write", "ops"]
TOML

log="$work/gateway.log"
trap test_gateway_exit_trap EXIT INT TERM
# Two quick attempts: a test waits for a job to fail while a simulator is down, then re-drives it.
GATEWAY_CONFIG_FILE="$keys" GATEWAY__WORKERS__MAX_ATTEMPTS=2 GATEWAY__WORKERS__RETRY_BASE_MS=50 \
  GATEWAY__WORKERS__POLL_INTERVAL_MS=100 \
  start_test_gateway console "$log"

(cd console && CONSOLE_GATEWAY_URL="$TEST_GATEWAY_URL" CONSOLE_OPS_KEY="$ops_key" \
  CONSOLE_READ_KEY="$read_key" CONSOLE_SETUP_KEY="$setup_key" \
  CONSOLE_SCREENSHOTS="$screenshots" CHROMIUM="$chromium" \
  node --test --test-concurrency=1 tests/console.test.mjs)

if grep -q 'status=5[0-9][0-9]' "$log"; then
  echo "error: console: the gateway answered a 5xx during the tests (see $log)" >&2
  exit 1
fi
echo "console: dist current, tsc clean, browser tests passed in $((SECONDS - start))s (screenshots in $screenshots)" >&2
