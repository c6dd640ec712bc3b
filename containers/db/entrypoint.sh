#!/bin/sh
# Entrypoint of the webstack database image (installed as /usr/local/bin/webstack-db-entrypoint).
# First start on an empty data volume: initdb, then create the application's role and database. Every start,
# including the first: exec postgres in the foreground as PID 1, so that Docker's stop signal (SIGINT, a
# fast shutdown) reaches it directly. Restarting on an initialized volume changes nothing.
set -eu

CONFIG=/etc/postgresql/webstack/postgresql.conf
: "${PGDATA:=/var/lib/postgresql/data}"
# Marks a finished first start; without it an interrupted setup is resumed (every step below is idempotent).
DONE="$PGDATA/webstack-initialized"

fail() { echo "webstack-db: error: $*" >&2; exit 1; }
log() { echo "webstack-db: $*"; }

# Names become SQL identifiers: accept only what settings.Database accepts, so quoting can never matter.
check_name() {
  eval "value=\${$1:-}"
  [ -n "$value" ] || fail "environment variable $1 is not set; it names the application's database $2"
  case "$value" in
    postgres) fail "$1='$value': the application's $2 must not be 'postgres'" ;;
  esac
  printf '%s' "$value" | grep -Eqx '[a-z_][a-z0-9_]{0,62}' \
    || fail "$1='$value' is not a lower-case SQL identifier (letters, digits, '_', at most 63 characters)"
}
check_name WEBSTACK_DB_USER role
check_name WEBSTACK_DB_NAME database

# A socket volume created from an older image kept 2770; postgres owns the directory, so it can tighten it. Its
# group must be dbsock, the backend's way in: a container created while the volume was empty (the database stopped
# removes its socket) copied its own image's directory over it once (issue 21: postgres:postgres 2775 from the
# backup image, and every backend got "Permission denied" until this was put right).
SOCKET_DIR=/var/run/postgresql
if [ -d "$SOCKET_DIR" ] && [ -O "$SOCKET_DIR" ]; then
  chgrp dbsock "$SOCKET_DIR" && chmod 2750 "$SOCKET_DIR"
elif [ -d "$SOCKET_DIR" ]; then
  log "warning: $SOCKET_DIR belongs to uid $(stat -c %u "$SOCKET_DIR"), not postgres: the backends may not reach the socket"
fi

[ -f "$CONFIG" ] || fail "$CONFIG is missing; build the image with PG_CONF_B64, PG_HBA_B64 and PG_IDENT_B64"
[ -d "$PGDATA" ] || fail "$PGDATA does not exist; mount the data volume there"
[ -O "$PGDATA" ] || fail "$PGDATA is owned by uid $(stat -c %u "$PGDATA"), but this process runs as uid $(id -u); run as the postgres user (uid 999) on a volume it owns"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "$(ls -A "$PGDATA")" ]; then
    fail "$PGDATA is not empty but holds no cluster (no PG_VERSION); refusing to initialize over unknown files"
  fi
  log "empty data directory: running initdb"
  # peer for local connections, reject for TCP: initdb's own defaults would be "trust".
  initdb -D "$PGDATA" --auth-local=peer --auth-host=reject -U postgres --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$DONE"
fi

if [ ! -f "$DONE" ]; then
  # A private socket directory: clients on the shared socket see the server only once setup is finished.
  setup_socket=$(mktemp -d /tmp/webstack-db-setup.XXXXXX)
  log "creating role '$WEBSTACK_DB_USER' and database '$WEBSTACK_DB_NAME'"
  pg_ctl -D "$PGDATA" -w -t 60 -l "$setup_socket/setup.log" \
    -o "-c config_file=$CONFIG -c unix_socket_directories=$setup_socket" start >/dev/null \
    || { cat "$setup_socket/setup.log" >&2; fail "the temporary server for setup did not start"; }
  # \gexec runs each generated statement; the NOT EXISTS guards make a resumed setup harmless.
  psql -h "$setup_socket" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 \
       -v user="$WEBSTACK_DB_USER" -v db="$WEBSTACK_DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
  pg_ctl -D "$PGDATA" -w -t 60 -m fast stop >/dev/null
  rm -rf "$setup_socket"
  touch "$DONE"
  log "setup finished"
fi

# The identity this volume was set up with: a start under another database name or role is refused (the role
# and database would not exist, and the backends would be rejected). The pre-deploy backup step refuses such a
# change first while the old container runs; this catches it after a destroy/redeploy. A volume set up before
# this record existed records its identity on its first start here.
IDENTITY="$PGDATA/webstack-identity"
want="database=$WEBSTACK_DB_NAME role=$WEBSTACK_DB_USER"
if [ -f "$IDENTITY" ]; then
  have=$(cat "$IDENTITY")
  [ "$have" = "$want" ] || fail "this data volume holds $have, but the configuration says $want; set \
webstack:database.name and webstack:database.user back, or move the data to a new stack with \
'python -m ops restore --stack NEW --from-stack OLD' (README, Backups)"
else
  printf '%s\n' "$want" > "$IDENTITY"
fi

exec postgres -D "$PGDATA" -c config_file="$CONFIG"
