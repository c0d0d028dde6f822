#!/usr/bin/env bash
# Installs (if missing) and starts a local PostgreSQL server for the test suite,
# then prints the SQLAlchemy URL of a fresh test database on stdout.
# Everything else goes to stderr so callers can capture the URL.
set -uo pipefail

log() { echo "[postgres] $*" >&2; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "PostgreSQL not installed; installing with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || {
        log "apt-get install postgresql failed"; exit 1; }
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^${version} main"; then
    log "creating cluster ${version}/main"
    pg_createcluster "${version}" main >&2 || { log "pg_createcluster failed"; exit 1; }
fi
if ! pg_lsclusters -h | grep -q "^${version} main .* online"; then
    log "starting cluster ${version}/main"
    if ! pg_ctlcluster "${version}" main start >&2; then
        # pg_ctl gives up after 60 s, but a server recovering from an unclean stop (a machine that was cut off
        # with the server running) goes on syncing its data directory and comes up later: wait for it
        log "pg_ctlcluster start did not finish in time; waiting up to 5 minutes for the server to come up"
        for _ in $(seq 60); do
            pg_lsclusters -h | grep -q "^${version} main .* online" && break
            sleep 5
        done
        pg_lsclusters -h | grep -q "^${version} main .* online" || { log "pg_ctlcluster start failed"; exit 1; }
        log "cluster ${version}/main is online"
    fi
fi

db="editgan_test"
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres';\"" >&2 || exit 1
su postgres -c "psql -q -c \"DROP DATABASE IF EXISTS ${db};\"" >&2
su postgres -c "psql -q -c \"CREATE DATABASE ${db};\"" >&2 || exit 1
port=$(pg_lsclusters -h | awk -v v="${version}" '$1==v && $2=="main" {print $3}')
echo "postgresql+psycopg://postgres:postgres@127.0.0.1:${port}/${db}"
