"""The target refuses the COPY of a batch: the driver reports the target's
own error, with its SQLSTATE, and never calls qsplit.apply_batch, so nothing
of the batch is applied and it stays open on the source.

The refusal is real: a LATIN1 target database cannot store a character its
encoding lacks, so the target's COPY FROM fails (22P05) on the event that
carries one.  Whether apply_batch ran is read on the target itself
(pg_stat_user_functions, with track_functions on for that database)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg2.extensions
import pytest
from psycopg2 import sql

from helpers import install_qsplit, run_sql, scratch_db, wait_for

QUEUE = "a"
NOT_LATIN1 = "\u4e2d"  # a CJK character: valid UTF8, no LATIN1 form


@contextmanager
def latin1_target(cluster) -> Iterator[str]:
    """A LATIN1 target database next to the cluster's target, qsplit installed,
    function calls counted; its superuser dsn.  Dropped afterwards."""
    with scratch_db("latin1_dst", encoding="LATIN1") as dsn:
        install_qsplit(dsn)
        run_sql(dsn, sql.SQL("alter database {} set track_functions = 'pl'")
                .format(sql.Identifier(run_sql(dsn, "select current_database()")[0][0])))
        run_sql(dsn, "select pgq.create_queue(%s)", (QUEUE,))
        yield dsn


def apply_batch_calls(dsn: str) -> int:
    """How often qsplit.apply_batch ran in this database, once the driver's
    sessions have ended (a backend's counts are flushed before it leaves
    pg_stat_activity)."""
    wait_for(lambda: run_sql(dsn, "select count(*) = 0 from pg_stat_activity"
                                  " where datname = current_database() and application_name like 'qsplit-driver%'")
             == [(True,)], 30, "the driver's target sessions to end")
    rows = run_sql(dsn, "select calls from pg_stat_user_functions where schemaname = 'qsplit' and funcname = 'apply_batch'")
    return rows[0][0] if rows else 0


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_target_refusing_the_copy_is_reported_with_its_sqlstate_and_nothing_is_applied(cluster, copy_format):
    """In both COPY formats (auto is binary here: one major)."""
    c = cluster
    c.src_exec("select pgq.create_queue('singlequeue')")
    with latin1_target(c) as target:
        dbname = psycopg2.extensions.parse_dsn(target)["dbname"]
        ini = c.write_ini(dst_db=psycopg2.extensions.make_dsn(c.driver_dst_dsn, dbname=dbname),
                          copy_format=copy_format)
        first = c.run_driver("--once", str(ini))  # registers the consumer
        assert first.returncode == 0, first.stderr + c.log_text()

        # a batch the target takes: the counting works and the position moves
        c.src_exec("select pgq.insert_event('singlequeue', 't', 'plain', %s, null, null, null)", (QUEUE,))
        c.tick()
        ok = c.run_driver("--once", str(ini))
        assert ok.returncode == 0, ok.stderr + c.log_text()
        calls = apply_batch_calls(target)
        assert calls >= 1
        position = run_sql(target, "select last_tick_id, last_batch_id from qsplit.consumer")
        assert position and position[0][0] is not None

        # a batch the target refuses: one event it cannot store, one it can
        c.src_exec("select pgq.insert_event('singlequeue', 't', %s, %s, null, null, null)",
                   (f"before {NOT_LATIN1} after", QUEUE))
        c.src_exec("select pgq.insert_event('singlequeue', 't', 'fine', %s, null, null, null)", (QUEUE,))
        c.tick()
        refused = c.run_driver("--once", str(ini))
        log = c.log_text()
        assert refused.returncode == 1, refused.stderr + log
        # the target's own error, with its SQLSTATE, not a later one (25P02)
        # nor a made-up one
        assert "[22P05]" in log and 'has no equivalent in encoding "LATIN1"' in log, log
        assert "Traceback" not in log + refused.stderr

        # apply_batch never ran: position, events, dead letters, counts unchanged
        assert apply_batch_calls(target) == calls
        assert run_sql(target, "select last_tick_id, last_batch_id from qsplit.consumer") == position
        assert run_sql(target, "select ev_data from pgq.event_template order by ev_id") == [("plain",)]
        assert run_sql(target, "select count(*) from qsplit.dead_letter") == [(0,)]
        # and the batch stays open on the source, to be applied once fixed
        assert c.src_exec("select count(*) from pgq.get_consumer_info('singlequeue', 'test_splitter')"
                          " where current_batch is not null") == [(1,)]
