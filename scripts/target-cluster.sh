#!/usr/bin/env bash
# A second local PostgreSQL cluster to play the target server, for the
# two-server modes of `make bench` and of the fault tests.  Idempotent:
# creates the cluster when missing, starts it when down, makes the role the
# bench and the tests connect as (a superuser over trust on 127.0.0.1),
# and does nothing when all is in place.  Prints the port on stdout.
#
#   QSPLIT_TARGET_CLUSTER  cluster name   (default: target)
#   QSPLIT_TARGET_PORT     its port       (default: 5433)
#   PGVER                  major version  (default: the newest installed)
# pgq must be installed for that version (scripts/prepare-machine.sh).
set -euo pipefail
# Only the port goes to stdout: every command whose output is not wanted
# writes to stderr (pg_ctlcluster prints "Removed stale pid file." after an
# unclean stop), so `port=$(scripts/target-cluster.sh)` holds a number and
# nothing else.  (Not `exec 1>&2` with the port on a saved descriptor: the
# postmaster would inherit that descriptor, and $(...) would wait for the
# server to exit.)

PGVER=${PGVER:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)}
NAME=${QSPLIT_TARGET_CLUSTER:-target}
PORT=${QSPLIT_TARGET_PORT:-5433}
if [ -z "$PGVER" ]; then
    echo "target-cluster: no PostgreSQL under /etc/postgresql; install postgresql first" >&2
    exit 1
fi

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "target-cluster: need root for: $*" >&2; exit 1; fi
}

if [ ! -d "/etc/postgresql/$PGVER/$NAME" ]; then
    # a port taken by another cluster would make two clusters fight over it
    if pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p {found=1} END {exit !found}'; then
        echo "target-cluster: port $PORT is used by another cluster (pg_lsclusters); set QSPLIT_TARGET_PORT" >&2
        exit 1
    fi
    echo "target-cluster: creating cluster $PGVER/$NAME on port $PORT" >&2
    as_root pg_createcluster "$PGVER" "$NAME" --port "$PORT" -- --auth=trust >/dev/null
fi
actual=$(pg_lsclusters -h | awk -v v="$PGVER" -v n="$NAME" '$1 == v && $2 == n {print $3}')
if [ "$actual" != "$PORT" ]; then
    echo "target-cluster: cluster $PGVER/$NAME listens on port $actual, not $PORT; set QSPLIT_TARGET_PORT=$actual" >&2
    exit 1
fi
if ! pg_isready -q -h 127.0.0.1 -p "$PORT"; then
    echo "target-cluster: starting cluster $PGVER/$NAME" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$PGVER" "$NAME" start >&2
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 1; done
fi

ME=${PGUSER:-$(id -un)}
if ! psql -X -q -h 127.0.0.1 -p "$PORT" -U "$ME" -d postgres -c 'select 1' >/dev/null 2>&1; then
    echo "target-cluster: creating superuser role $ME" >&2
    as_root su postgres -c "createuser -p '$PORT' --superuser '$ME'" >&2
fi
echo "$PORT"
