#!/usr/bin/env bash
# Make this machine ready for qsplit's demo and tests, idempotently:
#   - the local PostgreSQL cluster is running (started when it is down);
#   - the role the tests connect as exists; python3-venv is there;
#   - the pgq extension and pgqd are installed (Debian packages);
#   - logrotate and systemd-analyze, which the service-file tests run;
#   - prometheus and promtool, which the metrics tests run.
# Prints what it does; does nothing when all is in place.
set -euo pipefail

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "prepare-machine: need root for: $*" >&2; exit 1; fi
}

newest_installed() { ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -n 1; }

# a bare machine: Debian's own PostgreSQL (the `postgresql` package pulls the
# distribution's major; its postinst makes the cluster "main" on port 5432)
if [ -z "${PGVER:-}" ] && [ -z "$(newest_installed)" ]; then
    echo "prepare-machine: no PostgreSQL on this machine: installing Debian's postgresql"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    NEW_CLUSTER=1
fi
PGVER=${PGVER:-$(newest_installed)}
if [ -z "$PGVER" ] || [ ! -x "/usr/lib/postgresql/$PGVER/bin/postgres" ]; then
    echo "prepare-machine: no PostgreSQL ${PGVER:-server} under /usr/lib/postgresql: apt-get install postgresql" >&2
    exit 1
fi
# the cluster the tests use (postinst makes it unless createcluster.conf says not to)
if [ ! -d "/etc/postgresql/$PGVER/main" ] && ! pg_isready -q -h 127.0.0.1 -p "${PGPORT:-5432}"; then
    echo "prepare-machine: creating the PostgreSQL $PGVER cluster main on port ${PGPORT:-5432}"
    as_root pg_createcluster "$PGVER" main --port "${PGPORT:-5432}" >/dev/null
    NEW_CLUSTER=1
fi

if ! pg_isready -q -h 127.0.0.1 -p "${PGPORT:-5432}"; then
    echo "prepare-machine: starting PostgreSQL $PGVER"
    as_root pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "${PGPORT:-5432}" && break; sleep 1; done
fi

# a cluster this script just made: the tests and the demo (and the
# drivers they start, as login roles without passwords) connect over the
# loopback, which a stock cluster guards with passwords; trust the loopback
# (this is a test machine; an existing cluster is left as it is)
if [ "${NEW_CLUSTER:-0}" = 1 ] && [ -f "/etc/postgresql/$PGVER/main/pg_hba.conf" ]; then
    echo "prepare-machine: trusting 127.0.0.1 and ::1 in the new cluster's pg_hba.conf"
    hba=/etc/postgresql/$PGVER/main/pg_hba.conf
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$PGVER" main reload
fi

# the tests and the demo connect as the OS user over 127.0.0.1: that role
# must exist (a stock Debian cluster has only 'postgres')
ME=${PGUSER:-$(id -un)}
if ! psql -X -q -h 127.0.0.1 -U "$ME" -d postgres -c 'select 1' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && su postgres -c "psql -X -qAt -d postgres -c \"select 1 from pg_roles where rolname = '$ME'\"" | grep -q 1; then
        echo "prepare-machine: role $ME exists but cannot connect over 127.0.0.1: check pg_hba.conf (the tests expect trust or a ~/.pgpass)" >&2
        exit 1
    fi
    echo "prepare-machine: creating superuser role $ME"
    as_root su postgres -c "createuser --superuser '$ME'"
    # an existing cluster (or one whose first run of this script stopped
    # before the pg_hba.conf step) may still want a password on 127.0.0.1
    if ! psql -X -w -q -h 127.0.0.1 -U "$ME" -d postgres -c 'select 1' >/dev/null 2>&1; then
        echo "prepare-machine: role $ME created but cannot connect over 127.0.0.1: check pg_hba.conf (the tests expect trust or a ~/.pgpass)" >&2
        exit 1
    fi
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "prepare-machine: installing python3-venv"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

if [ ! -f "/usr/share/postgresql/$PGVER/extension/pgq.control" ] || ! command -v pgqd >/dev/null; then
    echo "prepare-machine: installing postgresql-$PGVER-pgq3 and pgqd"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PGVER-pgq3" pgqd >/dev/null
fi

missing=()
command -v logrotate >/dev/null || missing+=(logrotate)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "prepare-machine: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# promtool and prometheus: the metrics tests lint the exposition, check and
# unit-test the shipped alert rules, and scrape a running driver (started by
# the test on a free port; the package's own service is not used)
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    echo "prepare-machine: installing prometheus (promtool)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
