"""Hostile and odd input through the real driver: queue names that try to
break out of SQL, names longer than PostgreSQL's 63-byte identifiers, 10 MB
payloads, all-NULL events, control characters, and a SQL_ASCII source with
bytes the UTF8 target cannot take.  Every case: byte-exact or a clear error,
nothing lost, every table intact."""

from __future__ import annotations

import re

import pytest

from helpers import CONSUMER, open_batches, run_ok, setup_source, source_by_route

HOSTILE_NAMES = [
    "it's",
    'dq"uote',
    "semi;colon",
    "sp ace",
    "back\\slash",
    "dot.ted.name",
    "ünïcödé 日本 🎉",
    "x'); drop table qsplit.consumer; --",
    '"; drop schema pgq cascade; --',
    "%I %L %s $1 $$ :name",
    "tab\there\nnewline",
    # longer than an identifier (63 bytes): the two differ only at the end,
    # so any truncation to an identifier would merge them
    "L" * 200 + "-one",
    "L" * 200 + "-two",
    "é" * 150,
]


def catalog_snapshot(dsn_exec) -> list[tuple]:
    return dsn_exec(
        "select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('pgq', 'qsplit') and c.relkind in ('r', 'p', 'v') order by 1, 2"
    )


@pytest.mark.parametrize("how", ["existing", "create"])
def test_hostile_queue_names_arrive_exact_and_break_nothing(cluster, how):
    c = cluster
    if how == "existing":
        for name in HOSTILE_NAMES:
            c.dst_exec("select pgq.create_queue(%s)", (name,))
    ini = c.write_ini(on_unknown_queue="create" if how == "create" else "error")
    setup_source(c, ini)
    before_dst, before_src = catalog_snapshot(c.dst_exec), catalog_snapshot(c.src_exec)
    conn = c.src()
    with conn.cursor() as cur:
        for round_ in range(2):
            for i, name in enumerate(HOSTILE_NAMES):
                cur.execute("select pgq.insert_event('singlequeue', %s, %s, %s, %s, %s, %s)",
                            (name, f"{round_}/{i} {name}", name, name, name, name))
    c.tick()
    run_ok(c, ini)

    src = source_by_route(c)
    assert sorted(r for (r,) in c.dst_exec("select queue_name from pgq.queue")) == sorted(HOSTILE_NAMES)
    for name in HOSTILE_NAMES:
        assert c.target_events(name) == src[name], name
    # every table is still there, on both sides; the new queues added their
    # event tables and nothing else
    after_dst = catalog_snapshot(c.dst_exec)
    assert set(before_dst) <= set(after_dst)
    assert {r for r in set(after_dst) - set(before_dst)} <= {
        r for r in after_dst if r[0] == "pgq" and r[1].startswith("event_")
    }
    if how == "existing":
        assert after_dst == before_dst
    assert catalog_snapshot(c.src_exec) == before_src
    assert c.dst_exec("select count(*) from qsplit.consumer") == [(1,)]


def test_hostile_route_rules(cluster):
    """Route rules whose pattern and target carry SQL and quotes."""
    c = cluster
    target = "q'; drop table qsplit.route; --\\1"
    c.dst_exec("select pgq.create_queue(%s)", ("q'; drop table qsplit.route; --abc",))
    c.dst_exec("select qsplit.add_route(%s, %s, %s)", (CONSUMER, "x'\\);(.*)", target))
    ini = c.write_ini()
    setup_source(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd', %s, NULL, NULL, NULL)", ("x');abc",))
    c.tick()
    run_ok(c, ini)
    got = c.target_events("q'; drop table qsplit.route; --abc")
    assert [ev[3] for ev in got] == ["x');abc"]
    assert c.dst_exec("select count(*) from qsplit.route") == [(1,)]


def test_big_payloads_all_null_and_control_chars_byte_exact(cluster):
    c = cluster
    ctl = "".join(chr(b) for b in range(1, 32)) + "\x7f\\\\.\\N\\t\\"
    c.dst_exec("select pgq.create_queue('big'); select pgq.create_queue('catchall');"
               "select pgq.create_queue(%s)", ("ctl" + ctl,))
    ini = c.write_ini(on_null_queue="default", default_queue="catchall")
    setup_source(c, ini)
    conn = c.src()
    with conn.cursor() as cur:
        # 10 MB payloads: one of repeated text, one of every printable/control mix
        cur.execute("select pgq.insert_event('singlequeue', 'big', repeat('0123456789abcdef', 655360), 'big',"
                    " repeat('x', 1048576), NULL, NULL)")
        cur.execute("select pgq.insert_event('singlequeue', 'big', repeat(%s, 10485760 / length(%s)), 'big', NULL, NULL, NULL)",
                    (ctl + "é日", ctl + "é日"))
        # every field NULL, routing value included
        cur.execute("select pgq.insert_event('singlequeue', NULL, NULL, NULL, NULL, NULL, NULL)")
        # control characters and backslashes in every text field
        cur.execute("select pgq.insert_event('singlequeue', %s, %s, %s, %s, %s, %s)",
                    (ctl, ctl + "data", "ctl" + ctl, ctl + "2", ctl + "3", ctl + "4"))
    c.tick()
    run_ok(c, ini)

    src = c.source_events()
    def digest(exec_, table_sql):
        return exec_(f"select md5(coalesce(ev_type, '-')), md5(ev_data), length(ev_data), md5(coalesce(ev_extra2, '-'))"
                     f"  from ({table_sql}) e order by ev_id")
    (src_table,) = c.src_exec("select queue_data_pfx from pgq.queue where queue_name = 'singlequeue'")[0]
    (dst_table,) = c.dst_exec("select queue_data_pfx from pgq.queue where queue_name = 'big'")[0]
    want = digest(c.src_exec, f"select * from {src_table} where ev_extra1 = 'big'")
    got = digest(c.dst_exec, f"select * from {dst_table}")
    assert got == want and [r[2] for r in got] == [10485760, 10485760 // len(ctl + "é日") * len(ctl + "é日")]
    assert c.target_events("catchall") == [src[2][1:]]
    assert c.target_events("catchall")[0][1:] == (None,) * 6
    assert c.target_events("ctl" + ctl) == [src[3][1:]]


@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_sql_ascii_source_with_bytes_invalid_in_utf8(ascii_source, copy_format):
    """In both COPY formats (auto is binary here: one major)."""
    c = ascii_source
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini(copy_format=copy_format)
    setup_source(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'fine', 'a', NULL, NULL, NULL)")
    # 0xff is never valid UTF8; a SQL_ASCII database stores it as it is
    c.src_exec("select pgq.insert_event('singlequeue', 't', convert_from('\\x41ff42'::bytea, 'SQL_ASCII'),"
               " 'a', NULL, NULL, NULL)")
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'also fine', 'a', NULL, NULL,"
               " convert_from('\\xc3'::bytea, 'SQL_ASCII'))")
    c.tick()
    (table,) = c.src_exec("select queue_data_pfx from pgq.queue where queue_name = 'singlequeue'")[0]
    ids = [i for (i,) in c.src_exec(f"select ev_id from {table} order by ev_id")]  # pgq's own table name

    result = c.run_driver("--once", str(ini))
    assert result.returncode == 1
    log = c.log_text()
    assert f"source event(s) hold bytes that are not valid UTF8: ev_id {ids[1]} (ev_data), ev_id {ids[2]} (ev_extra4)" in log
    assert "SQL_ASCII" in log and "where ev_id = <id>" in log and "pgq.event_" in log
    assert "Traceback" not in log + result.stderr
    # nothing applied, nothing lost: the batch waits on the source
    assert c.target_events("a") == []
    assert open_batches(c) == 1

    # the DBA repairs the bytes on the source, the same batch then moves
    c.src_exec(f"update {table} set ev_data = 'AB' where ev_id = %s", (ids[1],))
    c.src_exec(f"update {table} set ev_extra4 = NULL where ev_id = %s", (ids[2],))
    run_ok(c, ini)
    assert [ev[2] for ev in c.target_events("a")] == ["fine", "AB", "also fine"]


@pytest.mark.parametrize("read_ahead,copy_format", [("0", "auto"), ("1", "auto"), ("1", "text")])
def test_batch_before_one_with_invalid_bytes_is_reported_and_finished(ascii_source, read_ahead, copy_format):
    """The batch before one the target cannot take is applied and reported
    like any other: its line, the original's stats line ({count: ...}), the
    source consumer moved past it; then the error, exit 1.  In both loops
    (read_ahead = 1 read the bad batch while applying the good one: its
    error dropped the good batch's stats line and left the source consumer
    behind the target)."""
    c = ascii_source
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini(read_ahead=read_ahead, copy_format=copy_format)
    setup_source(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'fine', 'a', NULL, NULL, NULL)")
    c.tick()
    c.src_exec("select pgq.insert_event('singlequeue', 't', convert_from('\\x41ff42'::bytea, 'SQL_ASCII'),"
               " 'a', NULL, NULL, NULL)")
    c.tick()

    result = c.run_driver("--once", str(ini))
    log = c.log_text()
    assert result.returncode == 1, result.stderr + log
    assert "not valid UTF8" in log and "Traceback" not in log + result.stderr
    assert [ev[2] for ev in c.target_events("a")] == ["fine"]
    assert " applied: {count: 1," in log, log
    assert re.search(r" INFO \{count: 1, duration: [\d.]+, idle: [\d.]+\}$", log, re.M), log
    # the source consumer is where the target is: its lag is the target's
    (target_tick,) = c.dst_exec("select last_tick_id from qsplit.consumer where consumer_name = %s", (CONSUMER,))[0]
    (source_tick,) = c.src_exec("select last_tick from pgq.get_consumer_info('singlequeue', %s)", (CONSUMER,))[0]
    assert source_tick == target_tick
