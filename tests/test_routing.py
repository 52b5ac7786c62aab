"""Route rules and the on_unknown_queue / on_null_queue policies, through the
real qsplit-driver and its ini: no poison batch, nothing lost."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from helpers import (CONSUMER, EVENT_FIELDS, Driver, open_batches, produce, run_ok, setup_source, source_by_route,
                     wait_for)

def test_error_policy_waits_then_recovers_without_restart(cluster):
    c = cluster
    c.dst_exec("select pgq.create_queue('present')")
    ini = c.write_ini(loop_delay="0.1")  # on_unknown_queue defaults to error
    setup_source(c, ini)
    produce(c, ["present", "missing", "present", "missing", "missing"])

    driver = Driver(c, str(ini))
    try:
        # two retries, backing off: one line each, naming the queue and how
        # many events want it
        wait_for(lambda: c.log_text().count("does not exist (3 event(s) want it)") >= 2, what="two error lines")
        errors = [line for line in c.log_text().splitlines() if "QS002" in line]
        assert "target queue 'missing' does not exist (3 event(s) want it)" in errors[0]
        assert "pgq.create_queue('missing')" in errors[0] and "on_unknown_queue" in errors[0]
        assert [line.rsplit("retrying in ", 1)[1] for line in errors[:2]] == ["1 s", "2 s"]
        # nothing of the batch applied, the batch still open on the source
        assert c.target_events("present") == []
        assert open_batches(c) == 1

        c.dst_exec("select pgq.create_queue('missing')")
        wait_for(lambda: open_batches(c) == 0, what="the batch to be applied")
        by_route = source_by_route(c)
        assert c.target_events("present") == by_route["present"]
        assert c.target_events("missing") == by_route["missing"]
        assert driver.alive()  # the same process, never restarted
    finally:
        driver.stop()


def test_skip_policy_counts_per_queue(cluster):
    c = cluster
    c.dst_exec("select pgq.create_queue('present'); select pgq.create_queue('closed');"
               "update pgq.queue set queue_disable_insert = true where queue_name = 'closed'")
    ini = c.write_ini(on_unknown_queue="skip", on_null_queue="skip")
    setup_source(c, ini)
    produce(c, ["present", "ghost", None, "ghost", "present", None, "ghost", "closed"])
    run_ok(c, ini)
    assert c.target_events("present") == source_by_route(c)["present"]
    assert c.target_events("closed") == []
    assert c.dst_exec("select queue_name from pgq.queue order by 1") == [("closed",), ("present",)]
    assert 'skipped: {"closed": 1, "ghost": 3, "null": 2}' in c.log_text()
    assert c.dst_exec("select count(*) from qsplit.dead_letter") == [(0,)]


def test_create_policy_makes_the_queue(cluster):
    c = cluster
    ini = c.write_ini(on_unknown_queue="create")
    setup_source(c, ini)
    produce(c, ["new.one", "new.two", "new.one"])
    run_ok(c, ini)
    by_route = source_by_route(c)
    assert c.target_events("new.one") == by_route["new.one"]
    assert c.target_events("new.two") == by_route["new.two"]
    assert 'created queues: {"new.one": 2, "new.two": 1}' in c.log_text()
    # a queue that exists but refuses inserts cannot be created: an error
    c.dst_exec("update pgq.queue set queue_disable_insert = true where queue_name = 'new.two'")
    produce(c, ["new.one", "new.two"])
    assert c.run_driver("--once", str(ini)).returncode == 1
    assert "[QS006] qsplit: consumer \"test_splitter\" batch 2: target queue 'new.two' refuses inserts" in c.log_text()
    assert "cannot_create_disabled" in c.log_text()
    assert len(c.target_events("new.one")) == 2  # nothing of that batch applied
    # NULL has its own policy, which cannot be 'create'
    bad = c.write_ini(name="bad.ini", on_null_queue="create")
    result = c.run_driver("--once", str(bad))
    assert result.returncode == 2
    assert "on_null_queue = 'create': must be one of error, skip, default, dead_letter" in result.stderr


def test_default_policy_keeps_source_order(cluster):
    c = cluster
    for q in ("known", "catchall"):
        c.dst_exec("select pgq.create_queue(%s)", (q,))
    ini = c.write_ini(on_unknown_queue="default", on_null_queue="default", default_queue="catchall")
    setup_source(c, ini)
    produce(c, ["stray1", "known", None, "stray2", "stray1", None])
    run_ok(c, ini)
    src = c.source_events()
    want_default = [ev[1:] for ev in src if ev[1 + EVENT_FIELDS.index("ev_extra1")] in ("stray1", "stray2", None)]
    assert c.target_events("catchall") == want_default  # source ev_id order across values
    assert c.target_events("known") == source_by_route(c)["known"]

    # a default queue that does not exist is an error, not a loss
    c.dst_exec("select pgq.drop_queue('catchall')")
    produce(c, ["stray3"])
    result = c.run_driver("--once", str(ini))
    assert result.returncode == 1
    assert "[QS008]" in c.log_text() and "default queue 'catchall' does not exist" in c.log_text()
    assert open_batches(c) == 1
    # default needs default_queue: refused when the ini is read
    bad = c.write_ini(name="bad.ini", on_unknown_queue="default")
    result = c.run_driver("--once", str(bad))
    assert result.returncode == 2 and "needs default_queue" in result.stderr


def test_dead_letter_policy_then_replay_exactly_once(cluster):
    c = cluster
    c.dst_exec("select pgq.create_queue('open'); select pgq.create_queue('closed');"
               "update pgq.queue set queue_disable_insert = true where queue_name = 'closed'")
    ini = c.write_ini(on_unknown_queue="dead_letter", on_null_queue="dead_letter")
    setup_source(c, ini)
    produce(c, ["later", "open", None, "closed", "later", "later"])
    run_ok(c, ini)
    assert 'dead letters: {"closed": 1, "later": 3, "null": 1}' in c.log_text()
    (batch_id,) = c.dst_exec("select last_batch_id from qsplit.consumer where consumer_name = %s", (CONSUMER,))[0]

    # the whole event, where it came from and why
    src = {ev[0]: ev[1:] for ev in c.source_events()}
    (table,) = c.src_exec("select queue_data_pfx from pgq.queue where queue_name = 'singlequeue'")[0]
    src_txid = dict(c.src_exec(f"select ev_id, ev_txid from {table}"))  # pgq's own table name
    dead = c.dst_exec(
        "select ev_id, ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4,"
        "       consumer_name, batch_id, queue_field, route_value, queue_name, reason, ev_txid,"
        "       dead_at <= now() from qsplit.dead_letter order by dl_id"
    )
    assert [d[0] for d in dead] == [ev_id for ev_id, ev in src.items() if ev[EVENT_FIELDS.index("ev_extra1")] in ("later", None, "closed")]
    for d in dead:
        assert d[1:8] == src[d[0]]
        assert d[8:11] == (CONSUMER, batch_id, "extra1") and d[15] is True
        assert d[14] == src_txid[d[0]]
    assert [(d[11], d[12], d[13]) for d in dead] == [
        ("later", "later", "unknown_queue"), (None, None, "null_queue"), ("closed", "closed", "insert_disabled"),
        ("later", "later", "unknown_queue"), ("later", "later", "unknown_queue"),
    ]

    # the cause still there: nothing moves
    assert c.dst_exec("select qsplit.replay_dead_letters(%s)", (CONSUMER,)) == [(0,)]
    c.dst_exec("select pgq.create_queue('later')")
    c.dst_exec("update pgq.queue set queue_disable_insert = false where queue_name = 'closed'")
    # only the queue asked for
    assert c.dst_exec("select qsplit.replay_dead_letters(%s, 'closed')", (CONSUMER,)) == [(1,)]
    assert c.dst_exec("select qsplit.replay_dead_letters(%s)", (CONSUMER,)) == [(3,)]
    assert c.dst_exec("select qsplit.replay_dead_letters(%s)", (CONSUMER,)) == [(0,)]
    by_route = source_by_route(c)
    assert c.target_events("later") == by_route["later"]  # exactly once, in source order
    assert c.target_events("closed") == by_route["closed"]
    assert c.target_events("open") == by_route["open"]
    # a NULL routing value names no queue: it stays
    assert c.dst_exec("select route_value, reason from qsplit.dead_letter") == [(None, "null_queue")]
    assert c.dst_exec("select qsplit.discard_dead_letters('someone_else')") == [(0,)]
    assert c.dst_exec("select qsplit.discard_dead_letters(%s)", (CONSUMER,)) == [(1,)]
    assert c.dst_exec("select count(*) from qsplit.dead_letter") == [(0,)]


def test_route_rules_map_names_by_priority(cluster):
    c = cluster
    for q in ("special", "q_b", "q_a", "other", "queue", "my.queue.b"):
        c.dst_exec("select pgq.create_queue(%s)", (q,))
    assert c.dst_exec(r"select qsplit.add_route(%s, 'queue\.(.*)', 'q_\1')", (CONSUMER,)) == [(10,)]
    assert c.dst_exec(r"select qsplit.add_route(%s, 'queue\.a', 'special', 5)", (CONSUMER,)) == [(5,)]
    # another consumer's rules do not apply
    c.dst_exec(r"select qsplit.add_route('someone_else', '.*', 'other')")
    ini = c.write_ini()
    setup_source(c, ini)
    produce(c, ["queue.a", "queue.b", "other", "queue", "queue.a", "my.queue.b"])
    run_ok(c, ini)
    by_route = source_by_route(c)
    assert c.target_events("special") == by_route["queue.a"]
    assert c.target_events("q_b") == by_route["queue.b"]
    # the pattern matches the whole value: 'queue' alone is not 'queue\..*'
    assert c.target_events("queue") == by_route["queue"]
    assert c.target_events("my.queue.b") == by_route["my.queue.b"]
    assert c.target_events("other") == by_route["other"]

    assert c.dst_exec(r"select qsplit.remove_route(%s, 'queue\.a')", (CONSUMER,)) == [(True,)]
    assert c.dst_exec(r"select qsplit.remove_route(%s, 'queue\.a')", (CONSUMER,)) == [(False,)]
    produce(c, ["queue.a"])
    run_ok(c, ini)
    assert [ev[3] for ev in c.target_events("q_a")] == ["queue.a"]
    assert len(c.target_events("special")) == 2

    # bad rules are refused with a clear error
    with pytest.raises(psycopg2.Error) as bad_regex:
        c.dst_exec("select qsplit.add_route(%s, 'queue(', 'x')", (CONSUMER,))
    assert bad_regex.value.pgcode == "QS010" and "not a valid regular expression" in str(bad_regex.value)
    with pytest.raises(psycopg2.Error) as escaping:
        c.dst_exec("select qsplit.add_route(%s, 'nothing)|(.*', 'x')", (CONSUMER,))
    assert escaping.value.pgcode == "QS010"
    with pytest.raises(psycopg2.Error) as taken:
        c.dst_exec("select qsplit.add_route(%s, 'z', 'x', 10)", (CONSUMER,))
    assert taken.value.pgcode == "QS010" and "priority 10 is taken" in str(taken.value)


def test_two_replays_at_once_move_each_dead_letter_once(cluster):
    c = cluster
    ini = c.write_ini(on_unknown_queue="dead_letter")
    setup_source(c, ini)
    produce(c, ["later"] * 5)
    run_ok(c, ini)
    c.dst_exec("select pgq.create_queue('later')")

    first = c.dst()
    first.autocommit = False
    with first.cursor() as cur:
        cur.execute("select qsplit.replay_dead_letters(%s)", (CONSUMER,))
        assert cur.fetchone() == (5,)
    second_result: list = []
    second = threading.Thread(
        target=lambda: second_result.extend(c.dst_exec("select qsplit.replay_dead_letters(%s)", (CONSUMER,))))
    second.start()
    wait_for(lambda: c.dst_exec("select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                                " and datname = current_database()") == [(1,)], what="the second replay to wait")
    first.commit()
    second.join(timeout=30)
    assert second_result == [(0,)]
    assert c.target_events("later") == source_by_route(c)["later"]
    assert c.dst_exec("select count(*) from qsplit.dead_letter") == [(0,)]


def test_one_unknown_name_per_event(cluster):
    """A producer that puts a unique value in the routing field: every event
    its own unknown queue.  All are dead-lettered, once; the log line and
    the error stay short."""
    c = cluster
    ini = c.write_ini(on_unknown_queue="dead_letter")
    setup_source(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd', 'u' || i, NULL, NULL, NULL)"
               "  from generate_series(1, 3000) i")
    c.tick()
    run_ok(c, ini)
    assert c.dst_exec("select count(*), count(distinct ev_id), bool_and(route_value = ev_extra1)::text"
                      "  from qsplit.dead_letter") == [(3000, 3000, "true")]
    line = [ln for ln in c.log_text().splitlines() if "dead letters:" in ln][0]
    assert line.endswith("(+2980 more, 2980 events)") and len(line) < 1000

    c.dst_exec("delete from qsplit.dead_letter")
    error_ini = c.write_ini(name="error.ini")
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd', 'v' || i, NULL, NULL, NULL)"
               "  from generate_series(1, 3000) i")
    c.tick()
    assert c.run_driver("--once", str(error_ini)).returncode == 1
    error = [ln for ln in c.log_text().splitlines() if "[QS002]" in ln][0]
    assert "and 2990 more" in error and len(error) < 1500


def test_policy_changed_with_reload_unblocks_the_batch(cluster):
    """A DBA stuck on 'error' edits the ini and sends -r (SIGHUP): the same
    process picks the new policy up and the batch moves, nothing lost."""
    c = cluster
    c.dst_exec("select pgq.create_queue('present')")
    ini = c.write_ini(loop_delay="0.1")
    setup_source(c, ini)
    produce(c, ["present", "missing", "present", "missing"])
    driver = Driver(c, str(ini))
    try:
        wait_for(lambda: "QS002" in c.log_text(), what="the error policy to refuse the batch")
        assert open_batches(c) == 1
        ini.write_text(ini.read_text() + "on_unknown_queue = dead_letter\n")
        reload = c.run_driver("-r", str(ini), timeout=30)
        assert reload.returncode == 0, reload.stderr
        wait_for(lambda: open_batches(c) == 0, timeout=60, what="the batch to be applied")
        assert c.target_events("present") == source_by_route(c)["present"]
        dead = c.dst_exec("select queue_name, ev_data from qsplit.dead_letter order by ev_id")
        assert dead == [("missing", row[EVENT_FIELDS.index("ev_data")]) for row in source_by_route(c)["missing"]]
        assert driver.alive()  # the same process, never restarted
    finally:
        driver.stop()
