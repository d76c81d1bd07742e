#!/usr/bin/env bash
# Start a local PostgreSQL for the tests and print its URL (and only that) on stdout.
#
#   export WIRETRAIL_TEST_PG_URL=$(bash tests/pg_start.sh)
#
# Idempotent; run as root on Debian/Ubuntu. Installs the distribution's postgresql package when
# pg_ctlcluster is missing, creates and starts the "main" cluster of the newest installed major
# version, then the role wiretrail/wiretrail and the database wiretrail_test.
set -euo pipefail
exec 3>&1 1>&2   # everything goes to stderr; the URL is written to fd 3 at the end

ROLE=wiretrail
PASSWORD=wiretrail
DATABASE=wiretrail_test
CLUSTER=main

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y postgresql
fi

VERSION=$(ls -1 /usr/lib/postgresql | sort -n | tail -1)
if [ -z "$VERSION" ]; then
    echo "pg_start.sh: no PostgreSQL server found under /usr/lib/postgresql" >&2
    exit 1
fi

if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {found=1} END {exit !found}'; then
    pg_createcluster "$VERSION" "$CLUSTER"
fi

PORT=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $3}')
STATUS=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $4}')
if [ "$STATUS" != "online" ]; then
    # The server must inherit no descriptor but 0-2: fd 3 is the caller's $(...) pipe (and a CI
    # runner may hand down others), which a long-lived server would hold open, so the caller
    # would never see end-of-file and wait forever.
    (
        for path in /proc/$BASHPID/fd/*; do
            fd=${path##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec pg_ctlcluster "$VERSION" "$CLUSTER" start
    )
fi

for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
        break
    fi
    sleep 0.5
done
if ! pg_isready -h 127.0.0.1 -p "$PORT"; then
    echo "pg_start.sh: PostgreSQL $VERSION/$CLUSTER did not become ready on port $PORT" >&2
    exit 1
fi

psql_as_postgres() {
    runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qtA "$@"
}

if [ "$(psql_as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
    psql_as_postgres -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'"
fi
if [ "$(psql_as_postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != "1" ]; then
    psql_as_postgres -c "CREATE DATABASE $DATABASE OWNER $ROLE"
fi

echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE" >&3
