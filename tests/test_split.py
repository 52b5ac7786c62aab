"""End to end through the real qsplit-driver: the seed's USECASE, many
batches over several queues, the crash window, position checks, odd data."""

from __future__ import annotations

import pytest

from helpers import REPO as REPO_ROOT, assert_exactly_once, produce, queue_event_table, setup_source

# also run on every other supported PostgreSQL major, and with source and
# target on the oldest and the newest (make test-matrix)
pytestmark = [pytest.mark.matrix, pytest.mark.mixed]


def read_through_consumer(cluster, queue: str, consumer: str = "reader") -> list[tuple]:
    """Read a target queue the way a batch-processing consumer does:
    pgq.next_batch / pgq.get_batch_events / pgq.finish_batch."""
    conn = cluster.dst()
    events = []
    with conn.cursor() as cur:
        while True:
            cur.execute("select pgq.force_tick(%s); select pgq.ticker(%s)", (queue, queue))
            cur.execute("select pgq.next_batch(%s, %s)", (queue, consumer))
            (batch_id,) = cur.fetchone()
            if batch_id is None:
                return events
            cur.execute(
                "select ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_time"
                " from pgq.get_batch_events(%s) order by ev_id",
                (batch_id,),
            )
            got = cur.fetchall()
            cur.execute("select pgq.finish_batch(%s)", (batch_id,))
            if not got:
                return events
            events.extend(got)


@pytest.mark.every_install_path
def test_usecase_end_to_end(usecase):
    c = usecase
    # consumers on the target register before the split, like a batch server's
    for q in ("queue.event1", "queue.event2"):
        c.dst_exec("select pgq.register_consumer(%s, 'reader')", (q,))
    ini = c.write_ini()
    first = c.run_driver("--once", str(ini))  # registers the consumer on singlequeue
    assert first.returncode == 0, first.stderr + c.log_text()

    c.src_exec("INSERT INTO queue.event1 (id, name) VALUES (1, 'user');")
    c.src_exec("INSERT INTO queue.event1 (id, name) VALUES (2, 'user two');")
    c.src_exec("INSERT INTO queue.event2 (id, name) VALUES (1, 'other');")
    c.tick()
    result = c.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + c.log_text()

    # SKIP: the rows themselves were never stored on the source
    assert c.src_exec("select count(*) from queue.event1") == [(0,)]
    src = {row[0]: row[1:] for row in c.source_events()}
    source_times = [row[1] for row in c.source_events()]

    e1 = read_through_consumer(c, "queue.event1")
    e2 = read_through_consumer(c, "queue.event2")
    assert [(t, d, x1) for t, d, x1, *_ in e1] == [
        ("I:id", "id=1&name=user", "queue.event1"),
        ("I:id", "id=2&name=user+two", "queue.event1"),
    ]
    assert [(t, d, x1) for t, d, x1, *_ in e2] == [("I:id", "id=1&name=other", "queue.event2")]
    # every field, ev_time included, equals the source event's
    got = sorted((ev[6], ev[0], ev[1], ev[2], ev[3], ev[4], ev[5]) for ev in e1 + e2)
    assert got == sorted(src.values())
    assert sorted(ev[6] for ev in e1 + e2) == sorted(source_times)
    log = c.log_text()
    assert '"queue.event1": 2' in log and '"queue.event2": 1' in log


def test_many_batches_several_queues(cluster):
    queues = [f"q{i}" for i in range(5)]
    ini = setup_source(cluster, cluster.write_ini(), queues)  # registers the consumer
    produce(cluster, queues, per_batch=997, batches=6)
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert sum(cluster.target_queue_counts().values()) == 6 * 997
    assert_exactly_once(cluster, queues)
    assert cluster.log_text().count(" applied: {count: 997,") == 6
    # nothing is left to do, and a second run moves nothing twice
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    assert_exactly_once(cluster, queues)


def test_crash_after_target_commit_replays_and_skips(cluster):
    queues = ["a", "b"]
    ini = setup_source(cluster, cluster.write_ini(), queues)  # registers the consumer
    produce(cluster, queues, per_batch=100, batches=1)

    crashed = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": "after_target_commit"})
    assert crashed.returncode == -9  # SIGKILL, like a power cut
    # the target has the batch; the source has not finished it (next_batch's
    # commit kept the batch taken, finish_batch never ran)
    assert sum(cluster.target_queue_counts().values()) == 100
    unfinished = cluster.src_exec(
        "select s.sub_last_tick < (select max(t.tick_id) from pgq.tick t where t.tick_queue = s.sub_queue)"
        "  from pgq.subscription s join pgq.consumer co on co.co_id = s.sub_consumer"
        " where co.co_name = 'test_splitter'"
    )
    assert unfinished == [(True,)]

    again = cluster.run_driver("--once", str(ini))
    assert again.returncode == 0, again.stderr + cluster.log_text()
    assert "skipped, already applied on the target" in cluster.log_text()
    assert_exactly_once(cluster, queues)  # no duplicates
    assert cluster.src_exec(
        "select count(*) from pgq.subscription s join pgq.consumer co on co.co_id = s.sub_consumer"
        " where co.co_name = 'test_splitter' and s.sub_batch is not null"
    ) == [(0,)]


def test_position_mismatch_raises_qs001_and_applies_nothing(cluster):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    cluster.dst_exec("select pgq.create_queue('a')")
    ini = cluster.write_ini()
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    produce(cluster, ["a"], per_batch=10, batches=1)
    cluster.dst_exec("insert into qsplit.consumer (consumer_name, last_tick_id) values ('test_splitter', 999)")

    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 1
    log = cluster.log_text()
    assert "QS001" in log and "lost its position" in log and "tick 999" in log and "register_consumer_at" in log
    assert "Traceback" not in log + result.stderr
    assert cluster.target_events("a") == []
    assert cluster.dst_exec("select last_tick_id from qsplit.consumer") == [(999,)]


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_odd_data_arrives_byte_exact(cluster, copy_format):
    """In both COPY formats (auto: binary on one major, text across majors)."""
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    for q in ("odd", "tab\tqueue"):
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))
    ini = cluster.write_ini(copy_format=copy_format)
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    values = [
        ("tab\there", "line\nbreak\r\nwin", "back\\slash\\N", "quo'te \"dq\"", "\\.", "ünïcödé 日本 🎉"),
        (None, None, None, None, None, None),
        ("", "", "", "", "", ""),
        ("\\N", "\\\\", "a\\tb", "x" * 5000, "\x01\x1f\x7f", "end\\"),
    ]
    conn = cluster.src()
    with conn.cursor() as cur:
        for typ, data, x2, x3, x4, extra in values:
            cur.execute(
                "select pgq.insert_event('singlequeue', %s, %s, 'odd', %s, %s, %s)", (typ, data, x2, x3, x4)
            )
            cur.execute(
                "select pgq.insert_event('singlequeue', %s, %s, 'tab\tqueue', %s, %s, %s)", (extra, data, x4, x3, x2)
            )
    cluster.tick()
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert_exactly_once(cluster, ["odd", "tab\tqueue"])
    got = cluster.target_events("odd")
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in got] == [tuple(v[:5]) for v in values]


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_copy_format_follows_the_majors_and_keeps_every_field_exact(cluster, copy_format):
    """copy_format = auto: batches are COPied in binary when source and
    target run the same major, in text when they do not (the mixed pairs of
    make test-matrix); copy_format = text: always text.  Either way the log
    says which, and times (microseconds, the ends of the range, infinity),
    NULLs and text arrive exactly."""
    majors = [cluster.src_exec("select current_setting('server_version_num')::int / 10000")[0][0],
              cluster.dst_exec("select current_setting('server_version_num')::int / 10000")[0][0]]
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    cluster.dst_exec("select pgq.create_queue('t')")
    ini = cluster.write_ini(copy_format=copy_format)
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    times = ["2026-11-30 12:34:56.789012+00", "1999-12-31 23:59:59.999999+00", "4713-01-01 00:00:00+00 BC",
             "294276-12-31 23:59:59.999999+00", "infinity", "-infinity", "2000-01-01 00:00:00+00"]
    for i, when in enumerate(times):
        cluster.src_exec(
            "select pgq.insert_event_raw('singlequeue', null, %s::timestamptz, null, %s, %s, %s, 't', %s, null, %s)",
            (when, i or None, f"type{i}", f"data {i}\t\\N", None if i % 2 else "x2", "ü" * i))
    cluster.tick()
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    log = cluster.log_text()
    if copy_format == "text":
        assert "COPY format: text (copy_format = text)" in log and "COPY format: binary" not in log
    elif majors[0] == majors[1]:
        assert f"COPY format: binary (source and target both PostgreSQL {majors[0]})" in log
    else:
        assert (f"COPY format: text (source PostgreSQL {majors[0]}, target PostgreSQL {majors[1]}: "
                "binary needs the same major)") in log
    # (not assert_exactly_once: Python's datetime cannot hold these times)
    # ev_time as seconds since the epoch: exact to the microsecond, and the
    # same text whatever TimeZone each server has
    fields = "extract(epoch from ev_time)::text, ev_type, ev_data, ev_extra2, ev_extra3, ev_extra4"
    sent = cluster.src_exec(f"select {fields} from {queue_event_table(cluster.src_dsn, 'singlequeue')} order by ev_id")
    got = cluster.dst_exec(f"select {fields} from {queue_event_table(cluster.dst_dsn, 't')} order by ev_id")
    assert len(sent) == len(times)
    assert got == sent


def test_seed_example_ini_with_dsns_adjusted(usecase, tmp_path):
    """The shipped queue_splitter example ini, only its DSNs (and queue name)
    changed, drives a logutriga stream exactly once; ~ paths expand to $HOME."""
    c = usecase
    example = (REPO_ROOT / "examples" / "queue_splitter.ini").read_text()
    ini = tmp_path / "queue_splitter.ini"
    ini.write_text(
        example.replace("dbname=sourcedb", c.src_dsn).replace("dbname=targetdb", c.dst_dsn).replace("= sourceq", "= singlequeue")
    )
    env = {"HOME": str(tmp_path)}
    assert c.run_driver("--once", str(ini), env=env).returncode == 0
    c.src_exec("insert into queue.event1 select i, 'n' || i from generate_series(1, 300) i")
    c.src_exec("insert into queue.event2 select i, 'm' || i from generate_series(1, 200) i")
    c.tick()
    result = c.run_driver("--once", str(ini), env=env)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "log" / "queue_spliter_sourcedb_sourceq_targetdb.log").read_text()
    assert '{"queue.event1": 300, "queue.event2": 200}' in log
    assert_exactly_once(c, ["queue.event1", "queue.event2"])
    # a second run finds nothing new and doubles nothing
    assert c.run_driver("--once", str(ini), env=env).returncode == 0
    assert c.target_queue_counts() == {"queue.event1": 300, "queue.event2": 200}


def test_two_source_queues_sharing_a_consumer_name_lose_nothing(cluster):
    """Tick ids start at 1 in every queue: a second source queue under the
    same consumer name must get QS007, not have its batch 'skipped'."""
    cluster.src_exec("select pgq.create_queue('singlequeue'); select pgq.create_queue('otherqueue')")
    cluster.dst_exec("select pgq.create_queue('a')")
    ini_a = cluster.write_ini("a.ini")
    ini_b = cluster.write_ini("b.ini", pgq_queue_name="otherqueue")
    assert cluster.run_driver("--once", str(ini_a)).returncode == 0
    assert cluster.run_driver("--once", str(ini_b)).returncode == 0
    for queue in ("singlequeue", "otherqueue"):
        cluster.src_exec(
            "select pgq.insert_event(%s, 't', %s || i, 'a', null, null, null) from generate_series(1, 5) i",
            (queue, queue),
        )
        cluster.tick(queue)
    assert cluster.run_driver("--once", str(ini_a)).returncode == 0
    result = cluster.run_driver("--once", str(ini_b))
    assert result.returncode == 1
    assert "QS007" in cluster.log_text() and "another source queue" in cluster.log_text()
    assert [r[2] for r in cluster.target_events("a")] == [f"singlequeue{i}" for i in range(1, 6)]
    # otherqueue's batch is still open for its consumer, all 5 events in it
    kept = cluster.src_exec(
        "select ev_data from pgq.get_batch_events("
        " (select current_batch from pgq.get_consumer_info('otherqueue', 'test_splitter'))) order by ev_id"
    )
    assert kept == [(f"otherqueue{i}",) for i in range(1, 6)]
