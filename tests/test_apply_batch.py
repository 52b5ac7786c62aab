"""qsplit.apply_batch at the SQL level: staged rows in, events and position out.

Each test stages rows with COPY into the session's staging table exactly as
the driver does, then calls the function on the same connection."""

from __future__ import annotations

import io
import threading

import psycopg2
import pytest

from helpers import wait_for



def staged_session(cluster, rows):
    """A target connection (not autocommit) with *rows* staged.  A row is
    (ev_id, ev_type, ev_data, ev_extra1); the other columns get fixed values."""
    conn = cluster.dst(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("select qsplit.prepare_staging()")
    conn.commit()
    buf = io.StringIO()
    for ev_id, typ, data, extra1 in rows:
        fields = [str(ev_id), "2026-01-02 03:04:05.678901+00", "1000", "\\N", typ, data, extra1, "e2", "\\N", "e4"]
        buf.write("\t".join("\\N" if f is None else f for f in fields) + "\n")
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(
            "copy pg_temp.qsplit_staging (ev_id, ev_time, ev_txid, ev_retry, ev_type, ev_data,"
            " ev_extra1, ev_extra2, ev_extra3, ev_extra4) from stdin",
            buf,
        )
    return conn


T1 = "2026-01-01 00:00:01+00"
T2 = "2026-01-01 00:00:02+00"
T3 = "2026-01-01 00:00:03+00"
T5 = "2026-01-01 00:00:05+00"


def apply(conn, consumer="c1", batch=1, prev=1, cur=2, field="extra1", prev_time=T1, cur_time=T2):
    with conn.cursor() as c:
        c.execute(
            "select * from qsplit.apply_batch(i_consumer => %s, i_batch_id => %s, i_prev_tick_id => %s,"
            " i_cur_tick_id => %s, i_queue_field => %s, i_prev_tick_time => %s, i_cur_tick_time => %s)",
            (consumer, batch, prev, cur, field, prev_time, cur_time),
        )
        return c.fetchall()


@pytest.fixture
def queues(cluster):
    for q in ("qa", "qb"):
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))
    return cluster


@pytest.mark.every_install_path
def test_routes_rows_in_ev_id_order_and_moves_position(queues):
    c = queues
    conn = staged_session(c, [(5, "t", "five", "qb"), (1, "t", "one", "qa"), (3, "t", "three", "qa"), (2, "t", "two", "qb")])
    assert sorted(apply(conn)) == [("qa", 2, "inserted"), ("qb", 2, "inserted")]
    conn.commit()
    assert [r[2] for r in c.target_events("qa")] == ["one", "three"]
    assert [r[2] for r in c.target_events("qb")] == ["two", "five"]
    assert c.dst_exec("select consumer_name, last_tick_id, last_batch_id from qsplit.consumer") == [("c1", 2, 1)]
    # the staging table is empty again after the commit
    with conn.cursor() as cur:
        cur.execute("select count(*) from pg_temp.qsplit_staging")
        assert cur.fetchone() == (0,)


@pytest.mark.every_install_path
def test_replayed_batch_is_skipped(queues):
    c = queues
    conn = staged_session(c, [(1, "t", "one", "qa")])
    apply(conn)
    conn.commit()
    conn2 = staged_session(c, [(1, "t", "one", "qa")])
    assert apply(conn2) == [(None, 1, "already_applied")]
    conn2.commit()
    assert len(c.target_events("qa")) == 1


def test_next_batch_on_track_applies(queues):
    c = queues
    conn = staged_session(c, [(1, "t", "one", "qa")])
    apply(conn, batch=1, prev=1, cur=2)
    conn.commit()
    conn = staged_session(c, [(2, "t", "two", "qa")])
    assert apply(conn, batch=2, prev=2, cur=5, prev_time=T2, cur_time=T5) == [("qa", 1, "inserted")]
    conn.commit()
    assert c.dst_exec("select last_tick_id from qsplit.consumer") == [(5,)]


@pytest.mark.every_install_path
def test_lost_position_raises_qs001(queues):
    c = queues
    c.dst_exec("insert into qsplit.consumer (consumer_name, last_tick_id) values ('c1', 7)")
    conn = staged_session(c, [(1, "t", "one", "qa")])
    with pytest.raises(psycopg2.Error) as err:
        apply(conn, batch=3, prev=1, cur=2)
    assert err.value.pgcode == "QS001"
    msg = err.value.diag.message_primary
    assert '"c1"' in msg and "batch 3" in msg and "ticks 1 to 2" in msg and "tick 7" in msg
    # the one safe repair (the target has tick 7, past this batch: move the
    # source consumer forward to it), never a reset that would double
    hint = err.value.diag.message_hint
    assert "pgq.register_consumer_at(<queue>, 'c1', 7)" in hint and "--rewind" in hint
    assert "forward to tick 7" in hint and "--reset would apply them twice" in hint
    assert "qsplit.reset_position" not in hint


@pytest.mark.every_install_path
@pytest.mark.parametrize(
    "rows, code, words",
    [
        ([(1, "t", "one", "qa"), (2, "t", "two", "nope")], "QS002", ["'nope'", "batch 9", '"c1"']),
        ([(1, "t", "one", "qa"), (2, "t", "two", None)], "QS003", ["1 event(s) have NULL", "batch 9", '"c1"']),
    ],
)
def test_bad_routing_value_applies_nothing(queues, rows, code, words):
    c = queues
    conn = staged_session(c, rows)
    with pytest.raises(psycopg2.Error) as err:
        apply(conn, batch=9)
    assert err.value.pgcode == code
    for w in words:
        assert w in err.value.diag.message_primary
    assert err.value.diag.message_hint
    conn.rollback()
    assert c.target_events("qa") == []
    assert c.dst_exec("select count(*) from qsplit.consumer where last_tick_id is not null") == [(0,)]


def test_disabled_queue_raises_qs006(queues):
    c = queues
    c.dst_exec("update pgq.queue set queue_disable_insert = true where queue_name = 'qa'")
    conn = staged_session(c, [(1, "t", "one", "qa")])
    with pytest.raises(psycopg2.Error) as err:
        apply(conn)
    assert err.value.pgcode == "QS006" and "'qa'" in err.value.diag.message_primary


def test_staging_missing_raises_qs004(queues):
    conn = queues.dst(autocommit=False)
    with pytest.raises(psycopg2.Error) as err:
        apply(conn)
    assert err.value.pgcode == "QS004" and "prepare_staging" in err.value.diag.message_hint


@pytest.mark.parametrize("field, expect", [("type", "qa"), ("ev_extra1", "qb"), ("EXTRA1", "qb")])
def test_queue_field(queues, field, expect):
    conn = staged_session(queues, [(1, "qa", "one", "qb")])
    assert apply(conn, field=field) == [(expect, 1, "inserted")]


def test_unknown_queue_field_raises_qs005(queues):
    conn = staged_session(queues, [(1, "qa", "one", "qb")])
    with pytest.raises(psycopg2.Error) as err:
        apply(conn, field="ev_data; drop table x")
    assert err.value.pgcode == "QS005"
    assert '"c1"' in err.value.diag.message_primary and "batch 1" in err.value.diag.message_primary


def test_same_tick_id_from_another_source_is_qs007_not_a_skip(queues):
    """Two source queues under one consumer name: tick 2 of the second one
    must not pass for tick 2 of the first (it would be skipped: lost)."""
    c = queues
    conn = staged_session(c, [(1, "t", "from a", "qa")])
    apply(conn, prev=1, cur=2, prev_time=T1, cur_time=T2)
    conn.commit()
    for prev_time, cur_time in [(T1, T5), (T5, T5)]:  # replay look-alike; next-batch look-alike below
        other = staged_session(c, [(1, "t", "from b", "qa")])
        with pytest.raises(psycopg2.Error) as err:
            apply(other, prev=1, cur=2, prev_time=prev_time, cur_time=cur_time)
        assert err.value.pgcode == "QS007"
        assert '"c1"' in err.value.diag.message_primary and "another source queue" in err.value.diag.message_primary
        other.rollback()
    other = staged_session(c, [(1, "t", "from b", "qa")])
    with pytest.raises(psycopg2.Error) as err:
        apply(other, batch=7, prev=2, cur=3, prev_time=T5, cur_time="2026-01-01 00:00:09+00")
    assert err.value.pgcode == "QS007"
    other.rollback()
    assert [r[2] for r in c.target_events("qa")] == ["from a"]


def test_position_without_tick_time_checks_ids_only(queues):
    """A position taken over from pgq_ext has no tick time: ids decide."""
    c = queues
    c.dst_exec("insert into qsplit.consumer (consumer_name, last_tick_id) values ('c1', 2)")
    conn = staged_session(c, [(1, "t", "one", "qa")])
    assert apply(conn, prev=1, cur=2) == [(None, 1, "already_applied")]
    conn.rollback()
    conn = staged_session(c, [(2, "t", "two", "qa")])
    assert apply(conn, batch=2, prev=2, cur=5, prev_time=T2, cur_time=T5) == [("qa", 1, "inserted")]
    conn.commit()
    assert c.dst_exec("select last_tick_id, last_tick_time = %s from qsplit.consumer", (T5,)) == [(5, True)]


def test_two_sessions_on_one_consumer_apply_once(queues):
    """Two sessions apply the same batch at the same moment.  A third one
    holds the consumer's position row FOR SHARE until both appliers are seen
    waiting on a lock, then lets go: both have started before either could
    read the position.  The row lock apply_batch takes serialises them: one
    applies, the other then finds the batch applied and writes nothing.
    (Without it both read the old position, wait only at the UPDATE, and
    apply the batch twice: that fails here every time, not by chance.)"""
    c = queues
    earlier = staged_session(c, [(1, "t", "zero", "qa")])
    assert apply(earlier) == [("qa", 1, "inserted")]  # the position row exists, at tick 2
    earlier.commit()

    appliers = [staged_session(c, [(2, "t", "one", "qa")]) for _ in range(2)]
    holder = c.dst()
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("select 1 from qsplit.consumer where consumer_name = 'c1' for share")
    results: dict[int, object] = {}

    def run(i: int, conn) -> None:
        try:
            results[i] = apply(conn, batch=2, prev=2, cur=3, prev_time=T2, cur_time=T3)
            conn.commit()
        except psycopg2.Error as exc:  # reported by the asserts below
            conn.rollback()
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, conn)) for i, conn in enumerate(appliers)]
    for t in threads:
        t.start()
    pids = [conn.info.backend_pid for conn in appliers]
    wait_for(lambda: c.dst_exec("select count(*) from pg_stat_activity"
                                " where pid = any (%s) and wait_event_type = 'Lock'", (pids,)) == [(2,)],
             30, "both appliers to wait on a lock")
    # the holder's lock is what they wait for (the second may queue behind the first)
    assert c.dst_exec("select bool_or(%s = any (pg_blocking_pids(p))) from unnest(%s::int[]) p",
                      (holder.info.backend_pid, pids)) == [(True,)]
    assert results == {}
    holder.rollback()
    for t in threads:
        t.join(30)
    assert sorted(results.values(), key=str) == [[("qa", 1, "inserted")], [(None, 1, "already_applied")]]
    assert [r[2] for r in c.target_events("qa")] == ["zero", "one"]
    assert c.dst_exec("select last_tick_id from qsplit.consumer where consumer_name = 'c1'") == [(3,)]
