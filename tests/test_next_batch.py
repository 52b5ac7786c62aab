"""Two drivers on one consumer taking the next batch at the same moment."""

from __future__ import annotations

import threading
from contextlib import closing

import psycopg2
import psycopg2.extensions
import pytest

from helpers import wait_for
from qsplit.source import NEXT_BATCH_LOCK, Source
from qsplit.target import Target

# also run on every other supported PostgreSQL major, and with source and
# target on the oldest and the newest (make test-matrix)
pytestmark = [pytest.mark.matrix, pytest.mark.mixed]


def test_concurrent_next_batch_waits_and_gets_the_same_batch(cluster):
    """pgq.next_batch_custom reads the open batch without a lock: a second
    driver arriving while the first one's next_batch is uncommitted would
    open a batch of its own (other ticks, with batch collecting on).  The
    driver's next_batch waits for the first one's commit and gets its batch."""
    c = cluster
    c.src_exec("select pgq.create_queue('singlequeue'); select pgq.register_consumer('singlequeue', 'c')")
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd' || i) from generate_series(1, 10) i")
    c.tick()

    first = c.src(autocommit=False)  # a driver in the middle of its next_batch
    with first.cursor() as cur:
        cur.execute(NEXT_BATCH_LOCK, ("singlequeue", "c"))
        cur.execute("select batch_id from pgq.next_batch_custom('singlequeue', 'c', null, null, null)")
        (first_batch,) = cur.fetchone()
    assert first_batch is not None

    second_conn = c.src(autocommit=False)
    second = Source(second_conn, "singlequeue", "c")
    got = {}
    thread = threading.Thread(target=lambda: got.setdefault("batch", second.next_batch()))
    thread.start()
    # the second next_batch must wait for the first one to commit
    wait_for(lambda: c.src_exec("select 1 from pg_stat_activity where pid = %s and wait_event_type = 'Lock'"
                                " and wait_event = 'advisory'", (second_conn.info.backend_pid,)),
             20, "the second next_batch to wait on the advisory lock")
    assert "batch" not in got
    first.commit()
    thread.join(20)
    assert got["batch"].batch_id == first_batch
    assert c.src_exec("select count(*) from pgq.get_batch_events(%s)", (first_batch,)) == [(10,)]


def test_the_gone_batch_errors_of_pgq_are_the_ones_the_driver_expects(cluster):
    """When another driver on the consumer finishes the batch between
    next_batch_custom and batch_event_sql (two statements inside the driver's
    one query), PgQ raises; the driver must know that error as "batch gone"
    (BATCH_GONE), not retry it as a failure.  pgq.batch_event_sql says
    'batch not found', pgq.batch_event_tables 'Cannot find data for batch'."""
    from qsplit.source import BATCH_GONE

    c = cluster
    c.src_exec("select pgq.create_queue('singlequeue'); select pgq.register_consumer('singlequeue', 'c')")
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd')")
    c.tick()
    (batch_id,) = c.src_exec("select pgq.next_batch('singlequeue', 'c')")[0]
    c.src_exec("select pgq.finish_batch(%s)", (batch_id,))
    for function in ("pgq.batch_event_sql", "pgq.batch_event_tables"):
        try:
            c.src_exec(f"select {function}(%s)", (batch_id,))
        except psycopg2.errors.RaiseException as exc:
            assert (exc.diag.message_primary or "").startswith(BATCH_GONE), (function, exc.diag.message_primary)
        else:
            raise AssertionError(f"{function} of a finished batch raised nothing")


def test_source_and_target_steps_leave_every_commit_to_the_loop(cluster):
    """As in python-pgq's work(), the loop commits after each step: register,
    next_batch, is_open, prepare and take_over_position leave their
    transaction open (so a rollback undoes them), never commit themselves."""
    c = cluster
    c.src_exec("select pgq.create_queue('singlequeue')")
    with closing(psycopg2.connect(c.src_dsn)) as src, closing(psycopg2.connect(c.dst_dsn)) as dst:
        source, target = Source(src, "singlequeue", "c"), Target(dst)
        in_transaction = psycopg2.extensions.TRANSACTION_STATUS_INTRANS

        assert source.register() is True
        assert src.info.transaction_status == in_transaction
        src.rollback()
        assert c.src_exec("select count(*) from pgq.get_consumer_info('singlequeue', 'c')") == [(0,)]
        assert source.register() is True
        source.commit()

        c.src_exec("select pgq.insert_event('singlequeue', 't', 'd')")
        c.tick()
        batch = source.next_batch()
        assert batch is not None and src.info.transaction_status == in_transaction
        src.rollback()
        assert c.src_exec("select current_batch from pgq.get_consumer_info('singlequeue', 'c')") == [(None,)]
        batch = source.next_batch()
        source.commit()
        assert source.is_open(batch.batch_id) is True
        assert src.info.transaction_status == in_transaction
        src.rollback()

        target.prepare()
        assert dst.info.transaction_status == in_transaction
        dst.rollback()
        with dst.cursor() as cur:
            cur.execute("select to_regclass('pg_temp.qsplit_staging')")
            assert cur.fetchone() == (None,)
        dst.rollback()
        assert target.take_over_position("c") is None
        assert dst.info.transaction_status == in_transaction
        dst.rollback()
