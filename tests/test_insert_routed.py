"""qsplit._insert_routed / apply_batch on staged rows in any physical order:
the ctid ranges are only a shortcut, the routing value decides and every
queue gets its rows in ev_id order."""

from __future__ import annotations

import random

import psycopg2

STAGE = (
    "insert into pg_temp.qsplit_staging (ev_id, ev_time, ev_type, ev_data, ev_extra1)"
    " values (%s, now(), 'I:id', %s, %s)"
)


def _stage(cur, rows):
    for ev_id, queue in rows:
        cur.execute(STAGE, (ev_id, f"id={ev_id}", queue))


def _queue_ids(cur, queue):
    cur.execute(
        "select format('%%I.%%I', n.nspname, c.relname) from pgq.queue q"
        " join pg_class c on c.oid = q.queue_data_pfx::regclass"
        " join pg_namespace n on n.oid = c.relnamespace where q.queue_name = %s",
        (queue,),
    )
    (table,) = cur.fetchone()
    cur.execute(f"select ev_data from {table} order by ev_id")  # name from the catalog
    return [int(d.removeprefix("id=")) for (d,) in cur.fetchall()]


def test_scrambled_staging_keeps_ev_id_order_per_queue(cluster):
    queues = ["q.a", "q.b", "q.c"]
    for q in queues:
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))
    rng = random.Random(6)
    rows = [(ev_id, rng.choice(queues)) for ev_id in range(1, 3001)]
    # interleaved stretches: a queue's first and last rows sit far apart, so
    # its ctid range covers the other queues' rows too
    scrambled = rows[:]
    rng.shuffle(scrambled)
    conn = psycopg2.connect(cluster.dst_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("select qsplit.prepare_staging()")
            conn.commit()
            _stage(cur, scrambled)
            cur.execute("select queue_name, n_events, action from qsplit.apply_batch('c1', 1, 1, 2, 'extra1')")
            result = cur.fetchall()
            conn.commit()
            for q in queues:
                assert _queue_ids(cur, q) == [ev_id for ev_id, queue in rows if queue == q], q
    finally:
        conn.close()
    assert result == [(q, sum(1 for _, x in rows if x == q), "inserted") for q in queues]


def test_insert_routed_maps_several_values_to_one_queue(cluster):
    cluster.dst_exec("select pgq.create_queue('merged'); select pgq.create_queue('alone')")
    rows = [(ev_id, ("x", "y", "z")[ev_id % 3]) for ev_id in range(1, 301)]
    conn = psycopg2.connect(cluster.dst_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("select qsplit.prepare_staging()")
            conn.commit()
            # grouped by value, as the driver stages a batch; x and z go to
            # one queue, so its rows come from two stretches, with y between
            _stage(cur, sorted(rows, key=lambda r: (r[1], r[0])))
            cur.execute(
                # each value's stretch of staged rows, as qsplit._route_plan finds them
                "select i.queue_name, i.n_events"
                "  from (select array_agg(first_row order by n) f, array_agg(last_row order by n) l"
                "          from (select min(ctid) first_row, max(ctid) last_row,"
                "                       array_position(%s, ev_extra1) n"
                "                  from pg_temp.qsplit_staging group by ev_extra1) g) r,"
                "       qsplit._insert_routed('ev_extra1', %s, %s, r.f, r.l) i",
                (["x", "z", "y"], ["x", "z", "y"], ["merged", "merged", "alone"]),
            )
            assert cur.fetchall() == [("alone", 100), ("merged", 200)]
            conn.commit()
            assert _queue_ids(cur, "merged") == [ev_id for ev_id, v in rows if v in ("x", "z")]
            assert _queue_ids(cur, "alone") == [ev_id for ev_id, v in rows if v == "y"]
    finally:
        conn.close()
