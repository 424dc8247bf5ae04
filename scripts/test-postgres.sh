#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests (once; later calls reuse it) and prints
# its URL. Data lives in /tmp; fsync is off: this is for tests, never for data you keep.
set -euo pipefail
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$pgbin" ] || { echo "test-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
data=${CANCEL_WORKER_PG_DATA:-/tmp/cancel-worker-pg}
port=${CANCEL_WORKER_PG_PORT:-55432}
password=cancel_worker_test_password
url="postgres://cancel_worker:${password}@127.0.0.1:${port}/cancel_worker_test"

# initdb and postgres refuse to run as root: use the postgres system user then.
as_db() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if ! "$pgbin/pg_isready" -h 127.0.0.1 -p "$port" -q; then
    if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
        as_db "$pgbin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    fi
    as_db "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
        start >/dev/null
fi

psql_local() { as_db psql -h /tmp -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_local -c "SELECT count(*) FROM pg_roles WHERE rolname = 'cancel_worker'")" = 0 ]; then
    psql_local -c "CREATE ROLE cancel_worker LOGIN PASSWORD '${password}'"
fi
# Tests create a database per fleet run.
psql_local -c "ALTER ROLE cancel_worker CREATEDB"
if [ "$(psql_local -c "SELECT count(*) FROM pg_database WHERE datname = 'cancel_worker_test'")" = 0 ]; then
    psql_local -c "CREATE DATABASE cancel_worker_test OWNER cancel_worker"
fi
echo "$url"
