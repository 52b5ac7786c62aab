#!/usr/bin/env bash
# make demo: a real split on the local server, end to end.
#
#  1. creates two databases, qsplit_demo_src (the OLTP side) and
#     qsplit_demo_dst (the batch server), with pgq on both;
#  2. on the source, the queue_splitter manual's USECASE: tables
#     queue.event1/queue.event2 whose pgq.logutriga trigger turns every
#     INSERT into an event on 'singlequeue';
#  3. on the target, qsplit's schema (make install-sql) and the target
#     queues queue.event1 and queue.event2;
#  4. runs qsplit-driver --once with an ini file of the queue_splitter
#     layout, and prints what each target queue received.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=${DEMO_SRC_DB:-qsplit_demo_src}
DST=${DEMO_DST_DB:-qsplit_demo_dst}
PGHOST=${PGHOST:-127.0.0.1}; export PGHOST
WORK=$(mktemp -d -t qsplit-demo.XXXXXX)
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

echo "== creating databases $SRC (source) and $DST (target)"
for db in "$SRC" "$DST"; do
    "${PSQL[@]}" -d postgres -c "drop database if exists \"$db\" with (force)" -c "create database \"$db\""
    "${PSQL[@]}" -d "$db" -c "create extension pgq"
done

echo "== source: the USECASE tables and their logutriga triggers on queue 'singlequeue'"
"${PSQL[@]}" -d "$SRC" -f tests/sql/usecase_source.sql >/dev/null

echo "== target: qsplit schema and the target queues"
make -s install-sql DSN="host=$PGHOST dbname=$DST" 2>&1 | sed 's/^/   /'
"${PSQL[@]}" -d "$DST" -c "select pgq.create_queue('queue.event1'), pgq.create_queue('queue.event2')" >/dev/null

cat > "$WORK/demo.ini" <<INI
[queue_splitter]
job_name        = qsplit_demo
src_db          = host=$PGHOST dbname=$SRC
dst_db          = host=$PGHOST dbname=$DST
pgq_queue_name  = singlequeue
logfile         = $WORK/%(job_name)s.log
pidfile         = $WORK/%(job_name)s.pid
loop_delay      = 0.2
INI

echo "== first run registers the consumer on the source queue"
.venv/bin/qsplit-driver --once "$WORK/demo.ini"

echo "== producing: 3 inserts into queue.event1, 2 into queue.event2, then a tick (pgqd does this in production)"
"${PSQL[@]}" -d "$SRC" <<'SQL'
INSERT INTO queue.event1 (id, name) VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');
INSERT INTO queue.event2 (id, name) VALUES (10, 'order 10'), (11, 'order 11');
SELECT pgq.force_tick('singlequeue') \g /dev/null
SELECT pgq.ticker() \g /dev/null
SQL

echo "== qsplit-driver --once $WORK/demo.ini"
.venv/bin/qsplit-driver --once "$WORK/demo.ini"
sed 's/^/   log: /' "$WORK/qsplit_demo.log"

echo "== what each target queue received (read from the target's event tables)"
"${PSQL[@]}" -d "$DST" <<'SQL'
\pset footer off
select string_agg(format('select %L::text as target_queue, count(*) as events from %s',
                         queue_name, queue_data_pfx::regclass), ' union all ' order by queue_name)
       || ' order by 1'
  from pgq.queue
\gexec
select string_agg(format('select %L::text as target_queue, ev_id, ev_type, ev_data, ev_extra1, ev_time from %s',
                         queue_name, queue_data_pfx::regclass), ' union all ' order by queue_name)
       || ' order by 1, 2'
  from pgq.queue
\gexec
SQL
echo "== done: databases $SRC and $DST are left for you to look at; work files in $WORK"
