"""--status on a target with several consumers: every consumer the reader
may see, as a table and as JSON, equal to what the target holds (position,
lag, last batch, events per queue, dead letters waiting); a writer sees its
own consumers, qsplit_admin all of them."""

from __future__ import annotations

import json

from helpers import PREFIX, cluster_role, dsn_as, produce, run_sql


def ok(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_status_shows_every_consumer_of_the_target(cluster):
    c = cluster
    c.src_exec("select pgq.create_queue('singlequeue')")
    c.dst_exec("select pgq.create_queue('q.a'); select pgq.create_queue('q.b')")
    # two consumers of the same driver role; a third of another writer role
    ini_a = c.write_ini("a.ini", job_name="split_a")
    ini_b = c.write_ini("b.ini", job_name="split_b", on_unknown_queue="dead_letter")
    other_writer = cluster_role(f"{PREFIX}_status_writer2", "qsplit_writer")
    ini_c = c.write_ini("c.ini", job_name="split_c", dst_db=dsn_as(c.dst_dsn, other_writer))
    for ini in (ini_a, ini_b, ini_c):
        ok(c.run_driver("--register", str(ini)))
    produce(c, {"q.a": 5, "q.b": 2, "nowhere": 3})
    ok(c.run_driver("--once", str(ini_b)))  # 3 dead letters
    c.dst_exec("select pgq.create_queue('nowhere')")
    ok(c.run_driver("--once", str(ini_a)))
    ok(c.run_driver("--once", str(ini_c)))
    produce(c, {"q.b": 4})
    ok(c.run_driver("--once", str(ini_a)))

    # the writer of split_a and split_b sees both, not split_c
    text = ok(c.run_driver("--status", str(ini_a))).stdout
    assert "consumer split_a" in text and "dead letters waiting: 0" in text  # split_a's own part
    table = text[text.index("consumers on the target"):]
    assert table.startswith("consumers on the target (2)")
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:4]}
    assert set(rows) == {"split_a", "split_b"}
    positions = dict(((name, (tick, batch)) for name, tick, batch in c.dst_exec(
        "select consumer_name, last_tick_id, last_batch_id from qsplit.consumer")))
    for name in ("split_a", "split_b"):
        tick, batch = positions[name]
        assert rows[name][1:3] == [str(tick), str(batch)], rows[name]
    # events routed and dead letters waiting are the last two columns
    assert rows["split_a"][-2:] == ["14", "0"] and rows["split_b"][-2:] == ["7", "3"], table
    per_queue = table[table.index("events per target queue"):]
    assert "split_c" not in table
    for name, queue, action, n in (("split_a", "q.a", "inserted", "5"), ("split_a", "q.b", "inserted", "6"),
                                   ("split_a", "nowhere", "inserted", "3"), ("split_b", "nowhere", "dead_letter", "3")):
        assert any(line.split()[:4] == [name, queue, action, n] for line in per_queue.splitlines()), (name, queue)

    # an admin sees every consumer; --json for scripts
    admin = cluster_role(f"{PREFIX}_status_admin", "qsplit_admin")
    ini_admin = c.write_ini("admin.ini", job_name="split_a", src_db=c.src_dsn, dst_db=dsn_as(c.dst_dsn, admin))
    doc = json.loads(ok(c.run_driver("--status", "--json", str(ini_admin))).stdout)
    assert doc["healthy"] is True and doc["consumer_name"] == "split_a" and doc["source"]["registered"] is True
    assert doc["source"]["pending_events"] is not None and doc["source"]["lag_seconds"] >= 0
    got = {row["consumer_name"]: row for row in doc["consumers"]}
    assert set(got) == {"split_a", "split_b", "split_c"}
    held = run_sql(c.dst_dsn, "select consumer_name, last_tick_id, last_batch_id, events_routed,"
                              " dead_letters_waiting from qsplit.consumer_status")
    assert {(r["consumer_name"], r["last_tick_id"], r["last_batch_id"], r["events_routed"],
             r["dead_letters_waiting"]) for r in got.values()} == set(held)
    assert got["split_b"]["dead_letters_waiting"] == 3
    assert run_sql(c.dst_dsn, "select count(*) from qsplit.dead_letter where consumer_name = 'split_b'") == [(3,)]
    assert sorted((q["queue_name"], q["action"], q["n_events"]) for q in got["split_c"]["queues"]) == [
        ("nowhere", "inserted", 3), ("q.a", "inserted", 5), ("q.b", "inserted", 2)]
    for row in got.values():
        assert row["lag_seconds"] >= 0 and row["since_last_batch_seconds"] >= 0 and row["last_applied_at"]

    # the writer of split_c sees split_c alone
    only_c = json.loads(ok(c.run_driver("--status", "--json", str(ini_c))).stdout)
    assert [row["consumer_name"] for row in only_c["consumers"]] == ["split_c"]


def test_status_json_on_an_empty_target_and_usage(cluster):
    c = cluster
    c.src_exec("select pgq.create_queue('singlequeue')")
    ini = c.write_ini()
    result = c.run_driver("--status", "--json", str(ini))
    assert result.returncode == 1  # not registered
    doc = json.loads(result.stdout)
    assert doc["consumers"] == [] and doc["source"] == {"registered": False} and doc["healthy"] is False
    text = c.run_driver("--status", str(ini)).stdout
    assert "consumers on the target (0)" in text and "none yet" in text
    misuse = c.run_driver("--json", str(ini))
    assert misuse.returncode == 2 and "--json goes with --status" in misuse.stderr
