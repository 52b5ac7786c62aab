#!/usr/bin/env bash
# The version matrix (make test-matrix, .ci/run): the tests marked `matrix`
# on every supported PostgreSQL major but the default server's (which runs
# the whole suite in `make test`), then those marked `mixed` (and using a
# source) on mixed pairs: source on the oldest major and target on the
# newest, and the reverse.  Servers come from scripts/pg-matrix.sh, one per
# major.
#
#   PG_MATRIX_MAJORS  majors to run alone   (default: the supported ones but the default server's;
#                     none: only the mixed pairs)
#   PG_MATRIX_MIXED   0 = skip the mixed pairs (default 1)
#   PG_MATRIX_JOBS    majors tested at once, each on its own server (default 2)
#   PYTEST_ARGS       more pytest arguments for every part
#
# Every part runs even when one fails; the exit status is non-zero when any
# part failed (a pytest run that collected no test, exit 5, is a failure).
# Prints how long each part took.
set -uo pipefail
cd "$(dirname "$0")/.."

MATRIX=scripts/pg-matrix.sh
PYTEST=${PYTEST:-.venv/bin/pytest}
JOBS=${PG_MATRIX_JOBS:-2}
# the long memory scenario proves nothing version-specific
MARK="matrix and not slow"
read -r -a SUPPORTED <<<"$(sed -n 's/^SUPPORTED="\(.*\)"$/\1/p' "$MATRIX")"
OLDEST=${SUPPORTED[0]}
NEWEST=${SUPPORTED[${#SUPPORTED[@]}-1]}

default_major=$(psql -X -qAt -h 127.0.0.1 -p "${PGPORT:-5432}" -d postgres \
                -c "select current_setting('server_version_num')::int / 10000" 2>/dev/null) || default_major=
if [ -z "${PG_MATRIX_MAJORS:-}" ]; then
    [ -n "$default_major" ] || { echo "test-matrix: the default server (port ${PGPORT:-5432}) is not up: run scripts/prepare-machine.sh" >&2; exit 1; }
    PG_MATRIX_MAJORS=$(for m in "${SUPPORTED[@]}"; do [ "$m" = "$default_major" ] || echo "$m"; done | xargs)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/qsplit-test-matrix.XXXXXX")
trap 'rm -rf "$work"' EXIT

# one part: pytest against SRC_PORT/DST_PORT; output to $work/NAME.log,
# a summary line to $work/NAME.sum; exit status of pytest
run_part() {  # NAME SRC_PORT DST_PORT BIN_DIR MARK
    local name=$1 src=$2 dst=$3 bin=$4 mark=$5 start=$SECONDS rc
    {
        echo "=== test-matrix: $name (source port $src, target port $dst, -m '$mark')"
        # the server's own client programs (pg_dump refuses a newer server);
        # the matrix's servers are its own: templates an interrupted run left
        # behind are dropped (--postgresql-drop-test-database)
        PATH="$bin:$PATH" PGPORT="$dst" PGPORT_SRC="$src" PGPORT_DST="$dst" \
            $PYTEST -q -p no:cacheprovider -m "$mark" --postgresql-drop-test-database ${PYTEST_ARGS:-} </dev/null
    } >"$work/$name.log" 2>&1
    rc=$?
    printf '%-30s %5s s  %s\n' "$name" $((SECONDS - start)) \
        "$([ $rc = 0 ] && echo ok || echo "FAILED (pytest exit $rc)")" >"$work/$name.sum"
    return $rc
}

summary=()
failed=0
finish() {  # PID NAME: wait for a part, show its output and summary
    wait "$1" || failed=1
    cat "$work/$2.log"
    summary+=("$(cat "$work/$2.sum")")
}

[ "$PG_MATRIX_MAJORS" = none ] && PG_MATRIX_MAJORS=
t0=$SECONDS
start=$SECONDS
# shellcheck disable=SC2086
if [ -n "$PG_MATRIX_MAJORS" ] && ! $MATRIX provision $PG_MATRIX_MAJORS >/dev/null; then
    echo "test-matrix: provisioning PostgreSQL $PG_MATRIX_MAJORS failed" >&2; exit 1
fi
[ -z "$PG_MATRIX_MAJORS" ] || summary+=("$(printf '%-30s %5s s' "provision $PG_MATRIX_MAJORS" $((SECONDS - start)))")

# the majors, JOBS at a time: each pytest has its own server, so runs at
# once touch nothing of each other (the fault tests restart their server)
pids=(); names=()
for m in $PG_MATRIX_MAJORS; do
    name="PostgreSQL $m"
    run_part "$name" "$($MATRIX port "$m")" "$($MATRIX port "$m")" "$($MATRIX bindir "$m")" "$MARK" &
    pids+=($!); names+=("$name")
    if [ ${#pids[@]} -ge "$JOBS" ]; then
        finish "${pids[0]}" "${names[0]}"; pids=("${pids[@]:1}"); names=("${names[@]:1}")
    fi
done
for i in "${!pids[@]}"; do finish "${pids[$i]}" "${names[$i]}"; done
for m in $PG_MATRIX_MAJORS; do
    if [ "$m" != "$OLDEST" ] && [ "$m" != "$NEWEST" ]; then $MATRIX stop "$m"; fi
done

if [ "${PG_MATRIX_MIXED:-1}" != 0 ]; then
    start=$SECONDS
    if old_port=$($MATRIX provision "$OLDEST") && new_port=$($MATRIX provision "$NEWEST"); then
        summary+=("$(printf '%-30s %5s s' "provision $OLDEST and $NEWEST" $((SECONDS - start)))")
        # only the tests that have a source say anything about a pair; one
        # pair at a time (the restart test restarts a server both would use)
        newest_bin=$($MATRIX bindir "$NEWEST")
        mixed="mixed and uses_source and not slow"
        run_part "source $OLDEST, target $NEWEST" "$old_port" "$new_port" "$newest_bin" "$mixed" &
        finish $! "source $OLDEST, target $NEWEST"
        run_part "source $NEWEST, target $OLDEST" "$new_port" "$old_port" "$newest_bin" "$mixed" &
        finish $! "source $NEWEST, target $OLDEST"
    else
        summary+=("provision $OLDEST and $NEWEST FAILED"); failed=1
    fi
fi
$MATRIX stop all

# a matrix that ran nothing must not pass
if [ "$(ls "$work"/*.sum 2>/dev/null | wc -l)" = 0 ]; then
    echo "test-matrix: no test part ran (PG_MATRIX_MAJORS='$PG_MATRIX_MAJORS', PG_MATRIX_MIXED=${PG_MATRIX_MIXED:-1})" >&2
    failed=1
fi
echo "=== test-matrix: timings"
printf '%s\n' "${summary[@]}"
printf '%-30s %5s s  %s\n' "total" $((SECONDS - t0)) "$([ $failed = 0 ] && echo "all passed" || echo FAILED)"
exit $failed
