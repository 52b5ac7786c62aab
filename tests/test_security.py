"""Security (issue 11): each test is one attack, tried as an attacker would,
with real roles on the real server.  docs/security.md is the threat model
these tests check."""

from __future__ import annotations

import io

import psycopg2
import pytest

from helpers import CONSUMER, DST_DRIVER_ROLE, PREFIX, cluster_role, dsn_as, produce, run_ok, setup_source

# ======================================================================
# SQL side (sec11sql): pgq_ext escalation, consumer ownership, poison
# routing values, queue creation caps, regex bombs, durable commits
# ======================================================================

def sqlstate_of(conn, sql: str, args=None) -> str | None:
    """Run *sql*; the SQLSTATE it failed with, None when it did not fail."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
    except psycopg2.Error as exc:
        if not conn.autocommit:
            conn.rollback()
        return exc.pgcode
    return None


def is_superuser(cluster, role: str) -> bool:
    return cluster.dst_exec("select rolsuper from pg_roles where rolname = %s", (role,))[0][0]


def stage(conn, rows) -> None:
    """Stage (ev_id, extra1) rows in this session's staging table as the
    driver does (prepare_staging + COPY), in the open transaction."""
    with conn.cursor() as cur:
        cur.execute("select qsplit.prepare_staging()")
        buf = io.StringIO()
        for ev_id, extra1 in rows:
            fields = [str(ev_id), "2026-01-02 03:04:05+00", "1000", "\\N", "t", f"d{ev_id}",
                      "\\N" if extra1 is None else extra1, "\\N", "\\N", "\\N"]
            buf.write("\t".join(fields) + "\n")
        buf.seek(0)
        cur.copy_expert("copy pg_temp.qsplit_staging (ev_id, ev_time, ev_txid, ev_retry, ev_type, ev_data,"
                        " ev_extra1, ev_extra2, ev_extra3, ev_extra4) from stdin", buf)


# --- item 1: SECURITY DEFINER code never evaluates an object another role made


def _plant_pgq_ext(cluster, attacker: str, how: str) -> None:
    """As *attacker* (CREATE on the database, nothing else): a pgq_ext whose
    completed_tick, when read, makes the attacker a superuser."""
    dbname = cluster.dst_exec("select current_database()")[0][0]
    cluster.dst_exec(f'grant create on database "{dbname}" to "{attacker}"')
    evil = ("create function pgq_ext.escalate() returns bigint language plpgsql as"
            f" $$ begin execute 'alter role \"{attacker}\" superuser'; return 1; end $$")
    setup = {
        "view": ["create schema pgq_ext", evil,
                 "create view pgq_ext.completed_tick as"
                 " select 'victim'::text as consumer_id, pgq_ext.escalate() as last_tick_id"],
        # a plain table, but its column type casts to bigint through the attacker's function
        "table_cast": ["create schema pgq_ext", "create type pgq_ext.tick as (id bigint)",
                       "create function pgq_ext.escalate(pgq_ext.tick) returns bigint language plpgsql as"
                       f" $$ begin execute 'alter role \"{attacker}\" superuser'; return 1; end $$",
                       "create cast (pgq_ext.tick as bigint) with function pgq_ext.escalate(pgq_ext.tick)"
                       " as assignment",
                       "create table pgq_ext.completed_tick (consumer_id text, last_tick_id pgq_ext.tick)",
                       "insert into pgq_ext.completed_tick values ('victim', row(7))"],
    }[how]
    conn = cluster.connect_as(attacker)
    with conn.cursor() as cur:
        for stmt in setup:
            cur.execute(stmt)


@pytest.mark.parametrize("how", ["view", "table_cast"])
def test_pgq_ext_of_another_role_is_never_read_as_definer(cluster, how):
    """A role with CREATE on the target database makes its own pgq_ext; the
    driver's first connection (take_over_position) must not run its code
    with the functions' owner's rights: refused with QS012, no escalation."""
    c = cluster
    attacker = cluster_role(f"{PREFIX}_sec_attacker", "qsplit_writer")
    _plant_pgq_ext(c, attacker, how)
    assert not is_superuser(c, attacker)
    for role in (attacker, DST_DRIVER_ROLE):
        conn = c.connect_as(role)
        state = sqlstate_of(conn, "select qsplit.take_over_position('victim')")
        assert not is_superuser(c, attacker), f"{attacker} became a superuser through {role}"
        assert state == "QS012"
    # nothing taken over, nothing bound
    assert c.dst_exec("select count(*) from qsplit.consumer") == [(0,)]


def test_pgq_ext_of_trusted_owner_is_still_taken_over(cluster):
    """The rule does not break the genuine case: pgq_ext made by the DBA."""
    c = cluster
    c.dst_exec("create schema pgq_ext; create table pgq_ext.completed_tick"
               " (consumer_id text, subconsumer_id text default '', last_tick_id bigint not null);"
               " insert into pgq_ext.completed_tick (consumer_id, last_tick_id) values ('victim', 42)")
    conn = c.connect_as(DST_DRIVER_ROLE)
    with conn.cursor() as cur:
        cur.execute("select qsplit.take_over_position('victim')")
        assert cur.fetchone() == (42,)
    # a trigger of anyone's making on it: refused, whoever owns the table
    c.dst_exec("delete from qsplit.consumer")
    c.dst_exec("create function pgq_ext.trg() returns trigger language plpgsql as $$ begin return new; end $$;"
               " create trigger t before update on pgq_ext.completed_tick for each row execute function pgq_ext.trg()")
    assert sqlstate_of(conn, "select qsplit.take_over_position('victim')") == "QS012"


# --- item 3: a consumer belongs to one role; other writers are refused


def _newest_tick(cluster) -> int:
    return cluster.src_exec("select max(t.tick_id) from pgq.tick t join pgq.queue q on q.queue_id = t.tick_queue"
                            " where q.queue_name = 'singlequeue'")[0][0]


def _position(cluster) -> tuple:
    return cluster.dst_exec("select last_tick_id, last_tick_time from qsplit.consumer where consumer_name = %s",
                            (CONSUMER,))[0]


def test_writer_cannot_forge_or_reset_another_consumers_position(cluster):
    """Another member of qsplit_writer forges an empty batch for our consumer
    (which moved its position past a real batch: 3 events lost) and resets
    it: both refused with QS011; every event arrives."""
    c = cluster
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini()
    setup_source(c, ini)
    produce(c, ["a", "a"])
    run_ok(c, ini)  # the consumer is now the driver role's
    produce(c, ["a", "a", "a"])
    last, _ = _position(c)
    other = cluster_role(f"{PREFIX}_sec_writer2", "qsplit_writer")
    forger = c.connect_as(other, autocommit=False)
    stage(forger, [])
    forged = sqlstate_of(forger, "select * from qsplit.apply_batch(%s, 0, %s, %s)", (CONSUMER, last, _newest_tick(c)))
    forger.commit()
    run_ok(c, ini)
    assert len(c.target_events("a")) == 5, "events lost to a forged batch"
    assert forged == "QS011"
    # a reset by another role would make the driver apply whatever comes next
    assert sqlstate_of(c.connect_as(other), "select qsplit.reset_position(%s)", (CONSUMER,)) == "QS011"
    assert _position(c)[0] == _newest_tick(c)
    # the owner itself may reset its consumer
    assert sqlstate_of(c.connect_as(DST_DRIVER_ROLE), "select qsplit.reset_position(%s)", (CONSUMER,)) is None


def test_stored_tick_time_is_never_replaced_by_null(cluster):
    c = cluster
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini()
    setup_source(c, ini)
    produce(c, ["a"])
    run_ok(c, ini)
    last, last_time = _position(c)
    assert last_time is not None
    conn = c.connect_as(DST_DRIVER_ROLE, autocommit=False)
    stage(conn, [])
    state = sqlstate_of(conn, "select * from qsplit.apply_batch(%s, 0, %s, %s)", (CONSUMER, last, last + 1))
    conn.commit()
    assert _position(c) == (last, last_time)
    assert state == "QS013"


def test_status_views_show_writers_only_their_own_consumers(cluster):
    c = cluster
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini()
    setup_source(c, ini)
    produce(c, ["a"])
    run_ok(c, ini)
    c.dst_exec("select qsplit.reset_position('nobodys')")  # an admin's reset binds nothing
    other = c.connect_as(cluster_role(f"{PREFIX}_sec_writer2", "qsplit_writer"))
    mine = c.connect_as(DST_DRIVER_ROLE)
    admin = c.connect_as(cluster_role(f"{PREFIX}_sec_admin", "qsplit_admin"))
    seen = {}
    for name, conn in (("other", other), ("mine", mine), ("admin", admin)):
        with conn.cursor() as cur:
            cur.execute("select consumer_name from qsplit.consumer_status order by 1")
            consumers = [r for (r,) in cur.fetchall()]
            cur.execute("select distinct consumer_name from qsplit.queue_status order by 1")
            seen[name] = (consumers, [r for (r,) in cur.fetchall()])
    assert seen == {"other": ([], []), "mine": ([CONSUMER], [CONSUMER]),
                    "admin": (["nobodys", CONSUMER], [CONSUMER])}


def test_admin_names_the_owner_of_a_consumer(cluster):
    """Moving a consumer to another driver role is an admin's act: the old
    role is refused from then on, with a hint that says what to run."""
    c = cluster
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini()
    setup_source(c, ini)
    produce(c, ["a"])
    run_ok(c, ini)
    other = cluster_role(f"{PREFIX}_sec_writer2", "qsplit_writer")
    admin = c.connect_as(cluster_role(f"{PREFIX}_sec_admin", "qsplit_admin"))
    with admin.cursor() as cur:
        cur.execute("select qsplit.set_consumer_owner(%s, %s)", (CONSUMER, other))
        assert cur.fetchone() == (DST_DRIVER_ROLE,)
    # a writer cannot do it for itself
    assert sqlstate_of(c.connect_as(other), "select qsplit.set_consumer_owner(%s, %s)", (CONSUMER, other)) == "42501"
    produce(c, ["a"])
    result = c.run_driver("--once", str(ini))
    assert result.returncode == 1
    log = c.log_text()
    assert "QS011" in log and f"select qsplit.set_consumer_owner('{CONSUMER}', '{DST_DRIVER_ROLE}')" in log
    assert len(c.target_events("a")) == 1
    new_ini = c.write_ini(name="other.ini", dst_db=dsn_as(c.dst_dsn, other))
    run_ok(c, new_ini)
    assert len(c.target_events("a")) == 2
