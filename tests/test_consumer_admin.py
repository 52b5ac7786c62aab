"""Consumer management, take-over from queue_splitter and status, through
the real CLI: --register, --unregister, --rewind, --reset, a start from a
pgq_ext.completed_tick position, --status and the qsplit status views."""

from __future__ import annotations

import re

import pytest

from helpers import Driver, assert_exactly_once, open_batches, produce, wait_for

# also run on every other supported PostgreSQL major, and with source and
# target on the oldest and the newest (make test-matrix)
pytestmark = [pytest.mark.matrix, pytest.mark.mixed]

QUEUES = ["a", "b"]


def _setup(cluster, **keys):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    for q in QUEUES:
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))
    return cluster.write_ini(**keys)


def _registered(cluster, consumer: str = "test_splitter") -> bool:
    return bool(cluster.src_exec("select 1 from pgq.get_consumer_info('singlequeue', %s)", (consumer,)))


def _position(cluster, consumer: str = "test_splitter"):
    rows = cluster.dst_exec("select last_tick_id from qsplit.consumer_status where consumer_name = %s", (consumer,))
    return rows[0][0] if rows else "no row"


def _ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


def test_register_and_unregister(cluster):
    ini = _setup(cluster)
    assert "registered consumer 'test_splitter'" in _ok(cluster.run_driver("--register", str(ini)))
    assert _registered(cluster)
    assert "already registered" in _ok(cluster.run_driver("--register", str(ini)))
    produce(cluster, QUEUES, per_batch=10, batches=1)
    _ok(cluster.run_driver("--once", str(ini)))
    tick = _position(cluster)
    assert isinstance(tick, int)

    out = _ok(cluster.run_driver("--unregister", str(ini)))
    assert "unregistered consumer 'test_splitter'" in out and f"was tick {tick}" in out
    assert not _registered(cluster)
    assert _position(cluster) is None
    # counts stay for the record
    assert cluster.dst_exec("select events_routed from qsplit.consumer_status") == [(10,)]
    # the driver registers itself again on start (as the 2.x original), and
    # carries on from the new registration without a position error
    produce(cluster, QUEUES, per_batch=4, batches=1, start=10)
    _ok(cluster.run_driver("--once", str(ini)))
    assert _registered(cluster)
    produce(cluster, QUEUES, per_batch=6, batches=1, start=14)
    _ok(cluster.run_driver("--once", str(ini)))
    assert sum(cluster.target_queue_counts().values()) == 16  # the 4 sent while unregistered are not ours


def test_reset_forgets_the_target_position(cluster):
    ini = _setup(cluster)
    _ok(cluster.run_driver("--once", str(ini)))
    produce(cluster, QUEUES, per_batch=10, batches=1)
    cluster.dst_exec("insert into qsplit.consumer (consumer_name, last_tick_id) values ('test_splitter', 999)")
    stuck = cluster.run_driver("--once", str(ini))
    assert stuck.returncode == 1 and "QS001" in cluster.log_text()

    out = _ok(cluster.run_driver("--reset", str(ini)))
    assert "target position forgotten (was tick 999)" in out
    assert _position(cluster) is None
    _ok(cluster.run_driver("--once", str(ini)))
    assert_exactly_once(cluster, QUEUES)


def test_rewind_moves_the_source_back_to_the_target_tick(cluster):
    ini = _setup(cluster)
    _ok(cluster.run_driver("--once", str(ini)))
    produce(cluster, QUEUES, per_batch=10, batches=1)
    _ok(cluster.run_driver("--once", str(ini)))
    applied_tick = _position(cluster)

    # the source consumer moves on without the target (e.g. the target was
    # restored from a backup): the next batch does not follow on
    produce(cluster, QUEUES, per_batch=7, batches=1, start=10)
    cluster.src_exec(
        "select pgq.finish_batch(b) from pgq.next_batch('singlequeue', 'test_splitter') b where b is not null"
    )
    produce(cluster, QUEUES, per_batch=5, batches=1, start=17)
    stuck = cluster.run_driver("--once", str(ini))
    assert stuck.returncode == 1 and "QS001" in cluster.log_text()
    assert sum(cluster.target_queue_counts().values()) == 10

    out = _ok(cluster.run_driver("--rewind", str(ini)))
    assert f"repositioned at tick {applied_tick}" in out
    _ok(cluster.run_driver("--once", str(ini)))
    assert_exactly_once(cluster, QUEUES)  # the skipped 7 and the last 5, once each


def test_rewind_without_target_position_and_while_running(cluster):
    ini = _setup(cluster)
    _ok(cluster.run_driver("--register", str(ini)))
    result = cluster.run_driver("--rewind", str(ini))
    # a warning and exit 0, as the original's "No tick found on dst side"
    assert result.returncode == 0 and "WARNING" in result.stderr and "has no position on the target" in result.stderr
    assert "Traceback" not in result.stderr

    # a running driver (it holds its pid file's lock): each switch refuses
    pidfile = cluster.workdir / "pid" / "test_splitter.pid"
    live = Driver(cluster, str(ini))
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(live.pid), what="the pidfile")
        for switch in ("--rewind", "--reset", "--unregister", "--register"):
            refused = cluster.run_driver(switch, str(ini))
            assert refused.returncode == 3 and "stop it first" in refused.stderr, switch
    finally:
        live.kill()


def _create_pgq_ext(cluster, layout: str) -> None:
    """pgq_ext's tracking table as an existing deployment has it."""
    if layout == "skytools3":
        table = ("create table pgq_ext.completed_tick (consumer_id text, subconsumer_id text default '',"
                 " last_tick_id bigint, primary key (consumer_id, subconsumer_id))")
    else:
        table = "create table pgq_ext.completed_tick (consumer_id text primary key, last_tick_id bigint not null)"
    cluster.dst_exec(f"create schema pgq_ext; {table}")


def _original_applies_batch(cluster, consumer: str, finish: bool) -> None:
    """One batch the way queue_splitter applies it: events into the target
    queues and pgq_ext.completed_tick in one target transaction, then
    pgq.finish_batch on the source (unless it died before that)."""
    src, dst = cluster.src(), cluster.dst()
    with src.cursor() as scur, dst.cursor() as dcur:
        scur.execute("select batch_id, cur_tick_id from pgq.next_batch_info('singlequeue', %s)", (consumer,))
        batch_id, cur_tick = scur.fetchone()
        scur.execute("select ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_time"
                     "  from pgq.get_batch_events(%s) order by ev_id", (batch_id,))
        events = scur.fetchall()
        dst.autocommit = False
        for ev_type, data, x1, x2, x3, x4, _ev_time in events:
            dcur.execute("select pgq.insert_event(%s, %s, %s, %s, %s, %s, %s)", (x1, ev_type, data, x1, x2, x3, x4))
        dcur.execute("delete from pgq_ext.completed_tick where consumer_id = %s", (consumer,))
        dcur.execute("insert into pgq_ext.completed_tick (consumer_id, last_tick_id) values (%s, %s)",
                     (consumer, cur_tick))
        dst.commit()
        if finish:
            scur.execute("select pgq.finish_batch(%s)", (batch_id,))


@pytest.mark.parametrize("layout, died_before_finish", [("skytools3", False), ("skytools3", True),
                                                        ("skytools2", True)])
def test_take_over_from_queue_splitter(cluster, layout, died_before_finish):
    ini = _setup(cluster)
    _create_pgq_ext(cluster, layout)
    cluster.src_exec("select pgq.register_consumer('singlequeue', 'test_splitter')")
    produce(cluster, QUEUES, per_batch=10, batches=1)
    _original_applies_batch(cluster, "test_splitter", finish=True)
    produce(cluster, QUEUES, per_batch=8, batches=1, start=10)
    _original_applies_batch(cluster, "test_splitter", finish=not died_before_finish)
    assert open_batches(cluster) == (1 if died_before_finish else 0)
    (taken,) = cluster.dst_exec("select last_tick_id from pgq_ext.completed_tick")[0]
    produce(cluster, QUEUES, per_batch=5, batches=2, start=18)

    # the DBA stops queue_splitter and starts qsplit-driver with the same ini
    _ok(cluster.run_driver("--once", str(ini)))
    log = cluster.log_text()
    assert f"took over position tick {taken} from pgq_ext.completed_tick" in log
    if died_before_finish:
        assert "skipped, already applied on the target" in log
    assert open_batches(cluster) == 0
    by_queue = {q: [ev[2] for ev in cluster.target_events(q)] for q in QUEUES}  # ev_data
    expected = {q: [f"n={i}" for i in range(28) if QUEUES[i % 2] == q] for q in QUEUES}
    assert by_queue == expected  # nothing lost, nothing doubled
    # qsplit kept queue_splitter's position in step with its own
    assert cluster.dst_exec("select last_tick_id from pgq_ext.completed_tick") == [(_position(cluster),)]
    # only once: --reset forgets both positions, as the original's --reset
    # deletes its pgq_ext row, so nothing is taken over again
    _ok(cluster.run_driver("--reset", str(ini)))
    assert cluster.dst_exec("select count(*) from pgq_ext.completed_tick") == [(0,)]
    _ok(cluster.run_driver("--once", str(ini)))
    assert cluster.log_text().count("took over position") == 1


def test_status_output_and_views(cluster):
    ini = _setup(cluster)
    before = cluster.run_driver("--status", str(ini))
    assert before.returncode == 1
    assert "registered: no" in before.stdout and "position: none" in before.stdout

    _ok(cluster.run_driver("--once", str(ini)))
    produce(cluster, QUEUES, per_batch=9, batches=2)
    _ok(cluster.run_driver("--once", str(ini)))
    produce(cluster, ["b"], per_batch=4, batches=1, start=100)  # pending, not yet applied
    # a crash after the target commit replays the batch: counted once
    crashed = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": "after_target_commit"})
    assert crashed.returncode == -9
    produce(cluster, ["a"], per_batch=3, batches=1, start=200)

    result = cluster.run_driver("--status", str(ini))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    (tick, batch) = cluster.dst_exec("select last_tick_id, last_batch_id from qsplit.consumer")[0]
    assert "consumer test_splitter" in out and "source queue singlequeue" in out
    assert "registered: yes" in out and "lag: " in out
    # pgq counts pending events by sequence (force_tick bumps it): only > 0
    assert int(re.search(r"pending events: (\d+)", out).group(1)) > 0, out
    assert f"current batch: {batch}" in out  # still open on the source after the crash
    assert f"position: tick {tick}, batch {batch}" in out
    assert "events routed: 22" in out
    assert "      a: 9 events in 2 batches" in out
    assert "      b: 13 events in 3 batches" in out
    assert "last batch: " in out and " ago)" in out

    view = cluster.dst_exec(
        "select events_routed, events_by_queue, last_tick_id from qsplit.consumer_status"
        " where consumer_name = 'test_splitter'"
    )
    assert view == [(22, {"a": 9, "b": 13}, tick)]
    rows = cluster.dst_exec("select queue_name, action, n_events, n_batches from qsplit.queue_status order by 1")
    assert rows == [("a", "inserted", 9, 2), ("b", "inserted", 13, 3)]
    assert cluster.target_queue_counts() == {"a": 9, "b": 13}


def test_status_counts_what_the_policies_did(cluster):
    ini = _setup(cluster, on_unknown_queue="skip", on_null_queue="dead_letter")
    _ok(cluster.run_driver("--once", str(ini)))
    cluster.src_exec(
        "select pgq.insert_event('singlequeue', 'ev', i::text, q, null, null, null)"
        "  from generate_series(1, 12) i,"
        "       lateral (select (array['a', 'nosuchqueue', null])[1 + i % 3] as q) r"
    )
    cluster.tick()
    _ok(cluster.run_driver("--once", str(ini)))
    rows = cluster.dst_exec("select queue_name, action, n_events from qsplit.queue_status order by 2, 1")
    assert rows == [("", "dead_letter", 4), ("a", "inserted", 4), ("nosuchqueue", "skipped", 4)]
    assert cluster.dst_exec("select events_routed, events_by_action from qsplit.consumer_status") == [
        (4, {"inserted": 4, "skipped": 4, "dead_letter": 4})
    ]
    out = cluster.run_driver("--status", str(ini)).stdout
    assert "events routed: 4" in out and "nosuchqueue [skipped]: 4 events in 1 batches" in out
    assert "(NULL) [dead_letter]: 4 events" in out
