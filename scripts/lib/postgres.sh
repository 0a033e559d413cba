# shellcheck shell=bash
# scripts/lib/postgres.sh: find, start or install a PostgreSQL server for this repo.
#
# Source it, then call:
#   ensure_postgres        exports PG_ADMIN_URL (e.g. postgres://postgres@127.0.0.1:5432, no
#                          database path: append /dbname yourself)
#   ensure_database NAME   creates database NAME on that server if it is missing
#   stop_local_postgres    stops the throwaway cluster of step d, if it runs
#
# ensure_postgres tries, in order, and stops at the first that works:
#   a. DATABASE_URL is set: use its server part, wait for it to answer (GATEWAY_PG_WAIT_SECS, 30)
#   b. a server at 127.0.0.1:5432 lets user postgres in without a password
#   c. Debian clusters (pg_lsclusters): use one that answers on its own port, starting it if down
#   d. PostgreSQL server binaries (/usr/lib/postgresql/*/bin): a throwaway trust-auth cluster in
#      .data/pg of this repo, on 127.0.0.1:${GATEWAY_PG_PORT:-55432}; reused (and restarted) later
#   e. as root with apt-get: install the Debian postgresql packages, then c and d
# It is idempotent and says nothing unless it starts, creates or installs something (on stderr).
#
# Environment:
#   DATABASE_URL             use this server (step a); the other steps are skipped
#   GATEWAY_PG_WAIT_SECS     how long step a waits for the server (default 30)
#   GATEWAY_PG_PORT          port of the throwaway cluster of step d (default 55432)
#   GATEWAY_PG_DIR           data directory of that cluster (default <repo>/.data/pg)
#   GATEWAY_PG_FORCE_LOCAL=1 skip steps b and c (go straight to the throwaway cluster)
#
# The functions return non-zero on failure (after one "error:" line on stderr) and never exit,
# so the library is safe to source in an interactive shell; it does not change shell options and
# works under `set -euo pipefail`.

_PG_LIB_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

_pg_note() { printf 'postgres: %s\n' "$*" >&2; }
_pg_err() { printf 'error: %s\n' "$*" >&2; }

# A URL with its password replaced by ***, for messages.
_pg_redact() { printf '%s' "$1" | sed -E 's#^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/?@]*):[^@/?]*@#\1:***@#'; }

_pg_is_root() { [[ "$(id -u)" == 0 ]]; }

# Install Debian packages quietly (root with apt-get only); shows the log's tail if that fails.
_pg_apt_install() {
  _pg_is_root && command -v apt-get >/dev/null 2>&1 || return 1
  local log
  log="$(mktemp)"
  _pg_note "installing $* with apt-get (one-time)..."
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } \
    </dev/null >"$log" 2>&1; then
    rm -f "$log"
    return 0
  fi
  tail -n 20 "$log" >&2
  rm -f "$log"
  _pg_err "apt-get install $* failed (output above)"
  return 1
}

# The highest installed server version's bin directory (/usr/lib/postgresql/N/bin), or fail.
_pg_server_bindir() {
  local d best="" bestv=-1 v
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] || continue
    v="${d#/usr/lib/postgresql/}"
    v="${v%%/*}"
    v="${v%%.*}"
    [[ "$v" =~ ^[0-9]+$ ]] || continue
    if ((v > bestv)); then
      bestv=$v
      best=$d
    fi
  done
  [[ -n "$best" ]] && printf '%s\n' "$best"
}

# Make sure psql and pg_isready are on PATH: use a server's bin dir, or install postgresql-client.
_pg_have_client() { command -v psql >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1; }
_pg_ensure_client() {
  _pg_have_client && return 0
  local bindir
  bindir="$(_pg_server_bindir)" || true
  if [[ -n "$bindir" && -x "$bindir/psql" && -x "$bindir/pg_isready" ]]; then
    PATH="$bindir:$PATH"
    export PATH
    return 0
  fi
  _pg_apt_install postgresql-client && _pg_have_client && return 0
  _pg_err "psql and pg_isready are missing: install the PostgreSQL client (Debian: apt-get install postgresql-client)"
  return 1
}

# Does a server at HOST:PORT let user postgres in without a password?
_pg_try_trust() {
  PGCONNECT_TIMEOUT=3 psql -w -X -q -h "$1" -p "$2" -U postgres -d postgres -Atc 'select 1' \
    </dev/null >/dev/null 2>&1
}

# TCP reachability of a postgres URL's host:port, for when pg_isready is not available.
_pg_tcp_open() {
  local auth="${1#*://}" host port
  auth="${auth##*@}"
  if [[ "$auth" =~ ^\[([^]]*)\](:([0-9]+))?$ ]]; then
    host="${BASH_REMATCH[1]}" port="${BASH_REMATCH[3]}"
  else
    host="${auth%%:*}"
    port=""
    [[ "$auth" == *:* ]] && port="${auth##*:}"
  fi
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 3 bash -c ': >"/dev/tcp/$1/$2"' _ "${host:-127.0.0.1}" "${port:-5432}" 2>/dev/null
}

# Step a.
_pg_from_database_url() {
  local url="$DATABASE_URL" server wait="${GATEWAY_PG_WAIT_SECS:-30}" rc=2 deadline
  if [[ ! "$url" =~ ^(postgres|postgresql)://[^/?#]* ]]; then
    _pg_err "DATABASE_URL must look like postgres://user:password@host:5432/dbname (got '$(_pg_redact "$url")')"
    return 1
  fi
  server="${BASH_REMATCH[0]}"
  [[ "$wait" =~ ^[0-9]+$ ]] || wait=30
  _pg_have_client || _pg_ensure_client 2>/dev/null || true
  deadline=$((SECONDS + wait))
  while :; do
    if command -v pg_isready >/dev/null 2>&1; then
      pg_isready -q -t 2 -d "$server/postgres" </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
      if ((rc == 3)); then
        _pg_err "DATABASE_URL is not a valid connection URL: $(_pg_redact "$url")"
        return 1
      fi
    else
      _pg_tcp_open "$server" && rc=0 || rc=2
    fi
    ((rc == 0)) && break
    if ((SECONDS >= deadline)); then
      _pg_err "PostgreSQL at $(_pg_redact "$server") (from DATABASE_URL) did not answer within ${wait}s"
      return 1
    fi
    sleep 1
  done
  PG_ADMIN_URL="$server"
  export PG_ADMIN_URL
}

# Step c: Debian clusters. Use one that answers on its own port; start those that are down.
_pg_debian_clusters() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 1
  local ver name port status _rest log
  # Online clusters first (maybe on another port than 5432).
  while read -r ver name port status _rest; do
    [[ "$status" == online* ]] || continue
    if _pg_try_trust 127.0.0.1 "$port"; then
      PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port"
      export PG_ADMIN_URL
      return 0
    fi
  done < <(pg_lsclusters -h 2>/dev/null)
  # Then start the ones that are down.
  while read -r ver name port status _rest; do
    [[ "$status" == down* ]] || continue
    command -v pg_ctlcluster >/dev/null 2>&1 || return 1
    _pg_note "starting Debian cluster $ver/$name (port $port)..."
    log="$(mktemp)"
    # Output to a file: the server must not inherit our stdout/stderr.
    if ! _pg_detached pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null >"$log" 2>&1; then
      _pg_note "could not start cluster $ver/$name: $(tr '\n' ' ' <"$log")"
      rm -f "$log"
      continue
    fi
    rm -f "$log"
    if _pg_try_trust 127.0.0.1 "$port"; then
      PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port"
      export PG_ADMIN_URL
      return 0
    fi
    _pg_note "cluster $ver/$name runs on port $port but does not let postgres in without a password over TCP"
  done < <(pg_lsclusters -h 2>/dev/null)
  return 1
}

# The throwaway cluster's directory: GATEWAY_PG_DIR, else <repo>/.data/pg, else (when the
# postgres user cannot reach the repo, or the socket path would be too long) a directory in /tmp.
_pg_local_dir() {
  local port="$1" dir
  if [[ -n "${GATEWAY_PG_DIR:-}" ]]; then
    printf '%s\n' "$GATEWAY_PG_DIR"
    return 0
  fi
  dir="$_PG_LIB_REPO/.data/pg"
  if { ! _pg_is_root || runuser -u postgres -- test -x "$_PG_LIB_REPO" 2>/dev/null; } &&
    ((${#dir} + 12 + ${#port} <= 107)); then
    printf '%s\n' "$dir"
  else
    printf '/tmp/onboarding-gateway-pg-%s\n' "$(printf '%s' "$_PG_LIB_REPO" | cksum | cut -d' ' -f1)"
  fi
}

# Run a command (that starts a server) with every descriptor above 2 closed, so that the server
# holds neither our lock nor a pipe of whoever runs us (which would then wait for it to exit).
_pg_detached() {
  (
    if [[ -d /proc/$BASHPID/fd ]]; then
      for fd in /proc/"$BASHPID"/fd/*; do
        fd="${fd##*/}"
        if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
          eval "exec $fd>&-" 2>/dev/null || true
        fi
      done
    fi
    "$@"
  )
}

# Run a command as the owner of the throwaway cluster (postgres when we are root).
_pg_as_owner() {
  if _pg_is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Step d: the throwaway cluster. Needs server binaries.
_pg_local_cluster() {
  local port="${GATEWAY_PG_PORT:-55432}" bindir dir parent lockfd="" rc
  bindir="$(_pg_server_bindir)" || return 1
  [[ -n "$bindir" ]] || return 1
  if [[ ! "$port" =~ ^[0-9]+$ ]]; then
    _pg_err "GATEWAY_PG_PORT must be a port number (got '$port')"
    return 2
  fi
  if _pg_is_root && ! id -u postgres >/dev/null 2>&1; then
    _pg_err "initdb refuses to run as root and there is no 'postgres' user to run it as"
    return 2
  fi
  dir="$(_pg_local_dir "$port")"
  parent="$(dirname "$dir")"
  mkdir -p "$parent" || return 2
  # The postgres user must reach the data directory (a umask of 077 would prevent that).
  if _pg_is_root && ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
    chmod a+x "$parent" || return 2
  fi

  # One set-up at a time (run.sh and test.sh may start together). The server is started with
  # _pg_detached: had it inherited the lock's descriptor, it would hold the lock while it runs.
  exec {lockfd}>"$parent/.$(basename "$dir").lock" || return 2
  if command -v flock >/dev/null 2>&1 && ! flock -w 300 "$lockfd"; then
    exec {lockfd}>&-
    _pg_err "another set-up of $dir has held $parent/.$(basename "$dir").lock for 300s: giving up"
    return 2
  fi
  _pg_local_cluster_locked "$port" "$bindir" "$dir" && rc=0 || rc=$?
  exec {lockfd}>&-
  return "$rc"
}

_pg_local_cluster_locked() {
  local port="$1" bindir="$2" dir="$3" ver log running_port
  if [[ -f "$dir/PG_VERSION" ]]; then
    # Reuse: the cluster's own major version, if still installed.
    ver="$(cat "$dir/PG_VERSION")"
    if [[ -x "/usr/lib/postgresql/$ver/bin/pg_ctl" ]]; then
      bindir="/usr/lib/postgresql/$ver/bin"
    else
      _pg_err "the cluster in $dir is PostgreSQL $ver, which is no longer installed: delete $dir"
      return 2
    fi
  else
    if [[ -d "$dir" && -n "$(ls -A "$dir" 2>/dev/null)" ]]; then
      _pg_err "$dir exists but holds no PostgreSQL cluster: delete it and retry"
      return 2
    fi
    _pg_note "creating a throwaway cluster in $dir ($bindir/initdb)..."
    mkdir -p "$dir" && chmod 700 "$dir" || return 2
    if _pg_is_root; then chown postgres: "$dir" || return 2; fi
    log="$(mktemp)"
    if ! _pg_as_owner "$bindir/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 \
      --locale=C.UTF-8 </dev/null >"$log" 2>&1 &&
      ! _pg_as_owner "$bindir/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 \
        --locale=C </dev/null >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      rm -f "$log"
      _pg_err "initdb failed in $dir (output above)"
      return 2
    fi
    rm -f "$log"
  fi

  if _pg_as_owner "$bindir/pg_ctl" -D "$dir" status </dev/null >/dev/null 2>&1; then
    # Already running: use the port it runs on (line 4 of postmaster.pid).
    running_port="$(sed -n 4p "$dir/postmaster.pid" 2>/dev/null)"
    [[ "$running_port" =~ ^[0-9]+$ ]] && port="$running_port"
  else
    _pg_note "starting the throwaway cluster in $dir on 127.0.0.1:$port..."
    # pg_ctl sends the server's output to $dir/log; ours goes to a file so that the server
    # never holds our stdout/stderr open.
    log="$(mktemp)"
    if ! _pg_detached _pg_as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/log" -w -t 60 \
      -o "-p $port -k '$dir' -c listen_addresses=127.0.0.1" start </dev/null >"$log" 2>&1; then
      cat "$log" >&2
      tail -n 10 "$dir/log" >&2 2>/dev/null || true
      rm -f "$log"
      _pg_err "could not start the throwaway cluster in $dir on port $port (is the port taken? set GATEWAY_PG_PORT)"
      return 2
    fi
    rm -f "$log"
  fi
  if ! _pg_try_trust 127.0.0.1 "$port"; then
    _pg_err "the throwaway cluster in $dir runs but does not answer on 127.0.0.1:$port"
    return 2
  fi
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port"
  PG_LOCAL_DIR="$dir"
  export PG_ADMIN_URL PG_LOCAL_DIR
}

# Steps c then d. Returns 1 when neither applies (nothing installed), 2 on a real failure.
_pg_installed() {
  if [[ "${GATEWAY_PG_FORCE_LOCAL:-0}" != 1 ]] && _pg_debian_clusters; then return 0; fi
  _pg_local_cluster
}

ensure_postgres() {
  unset PG_ADMIN_URL
  # a. An explicit server.
  if [[ -n "${DATABASE_URL:-}" ]]; then
    if [[ "${GATEWAY_PG_FORCE_LOCAL:-0}" == 1 ]]; then
      _pg_note "DATABASE_URL is set, so GATEWAY_PG_FORCE_LOCAL is ignored"
    fi
    _pg_from_database_url
    return
  fi
  _pg_ensure_client || return 1
  # b. The usual local server.
  if [[ "${GATEWAY_PG_FORCE_LOCAL:-0}" != 1 ]] && _pg_try_trust 127.0.0.1 5432; then
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432"
    export PG_ADMIN_URL
    return 0
  fi
  # c, d. Installed clusters or server binaries.
  local rc
  _pg_installed && rc=0 || rc=$?
  ((rc == 0)) && return 0
  ((rc == 2)) && return 1
  # e. Install the server, then c and d again.
  if _pg_is_root && command -v apt-get >/dev/null 2>&1; then
    _pg_apt_install postgresql postgresql-client || return 1
    _pg_ensure_client || return 1
    _pg_installed && return 0
  fi
  # f. Nothing worked.
  _pg_err "no PostgreSQL found: start one that lets user postgres in without a password on 127.0.0.1:5432, install the server (Debian: apt-get install postgresql), or set DATABASE_URL=postgres://user:password@host:5432/dbname"
  return 1
}

# Create database $1 on $PG_ADMIN_URL if it does not exist yet.
ensure_database() {
  local name="${1:-}"
  if [[ ! "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    _pg_err "ensure_database: bad database name '$name' (letters, digits and _ only)"
    return 1
  fi
  if [[ -z "${PG_ADMIN_URL:-}" ]]; then
    _pg_err "ensure_database: call ensure_postgres first"
    return 1
  fi
  _pg_ensure_client || return 1
  local q="select 1 from pg_database where datname = '$name'" out
  out="$(psql -w -X -q -d "$PG_ADMIN_URL/postgres" -Atc "$q" </dev/null 2>&1)" || {
    _pg_err "cannot query $(_pg_redact "$PG_ADMIN_URL"): $(printf '%s' "$out" | head -n 1)"
    return 1
  }
  [[ "$out" == 1 ]] && return 0
  if ! out="$(psql -w -X -q -d "$PG_ADMIN_URL/postgres" -c "create database \"$name\"" </dev/null 2>&1)"; then
    # Someone else may have created it meanwhile.
    [[ "$(psql -w -X -q -d "$PG_ADMIN_URL/postgres" -Atc "$q" </dev/null 2>/dev/null)" == 1 ]] && return 0
    _pg_err "cannot create database $name on $(_pg_redact "$PG_ADMIN_URL"): $(printf '%s' "$out" | head -n 1)"
    return 1
  fi
  _pg_note "created database $name"
}

# Stop the throwaway cluster of step d (no-op when it does not run).
stop_local_postgres() {
  local dir ver
  dir="$(_pg_local_dir "${GATEWAY_PG_PORT:-55432}")"
  [[ -f "$dir/PG_VERSION" ]] || return 0
  ver="$(cat "$dir/PG_VERSION")"
  _pg_as_owner "/usr/lib/postgresql/$ver/bin/pg_ctl" -D "$dir" status >/dev/null 2>&1 || return 0
  _pg_as_owner "/usr/lib/postgresql/$ver/bin/pg_ctl" -D "$dir" -m fast -w stop </dev/null >/dev/null 2>&1
}
