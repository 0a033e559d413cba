# shellcheck shell=bash
# scripts/lib/npm.sh: install a folder's npm packages exactly as its package-lock.json pins them.
#
#   npm_ci_from_lock DIR LABEL LOG   `npm ci` in DIR unless DIR/node_modules already holds that
#                                    lockfile's install (a stamp with the lockfile's hash says
#                                    so). Short fetch timeouts and one retry, all bounded by
#                                    NPM_CI_TIMEOUT_SECS (default 300): a machine that cannot
#                                    reach the registry fails in seconds with one "error:" line
#                                    (LABEL: ...) naming the registry and LOG, not a hang.
# Returns non-zero on failure and never exits.

npm_ci_from_lock() {
  local dir=$1 label=$2 log=$3
  local lock_hash stamp registry
  lock_hash="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  stamp="$dir/node_modules/.installed-from-lock"
  if [[ "$(cat "$stamp" 2>/dev/null)" == "$lock_hash" ]]; then
    return 0
  fi
  registry="$(cd "$dir" && npm config get registry)"
  echo "$label: npm ci in $dir (from package-lock.json)" >&2
  if ! (cd "$dir" && timeout "${NPM_CI_TIMEOUT_SECS:-300}" npm ci --no-audit --no-fund \
    --prefer-offline --fetch-timeout=15000 --fetch-retries=1 --loglevel=error) >"$log" 2>&1; then
    echo "error: $label: npm ci failed; is the npm registry $registry reachable? (log: $log)" >&2
    return 1
  fi
  echo "$lock_hash" >"$stamp"
}
