"""Security (issue 11): each test is one attack, tried as an attacker would,
with real roles on the real server.  docs/security.md is the threat model
these tests check."""

from __future__ import annotations

import io
import os
import pwd
import re
import signal
import subprocess
import time
from contextlib import contextmanager

import psycopg2
import pytest
from psycopg2 import sql

from helpers import (CONSUMER, DST_DRIVER_ROLE, PG_PORT_DST, PREFIX, Cluster, Driver, cluster_role,
                     dsn_as, dsn_for, install_qsplit, offline_script, process_alive, produce, run_driver, run_ok,
                     run_psql_script, run_sql, scratch_db, setup_source, wait_for)

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


@pytest.mark.parametrize("how", ["view", "table_cast"])
def test_pgq_ext_of_another_role_is_never_read_by_apply_batch(cluster, how):
    """apply_batch keeps pgq_ext in step for switching with queue_splitter:
    the same look-alikes planted after the consumer started are refused there
    too (QS012), nothing is applied, and nobody became a superuser."""
    c = cluster
    ini = setup_source(c, c.write_ini(), ["a"])
    produce(c, ["a"])
    run_ok(c, ini)
    attacker = cluster_role(f"{PREFIX}_sec_attacker", "qsplit_writer")
    _plant_pgq_ext(c, attacker, how)
    produce(c, ["a"])
    result = c.run_driver("--once", str(ini))
    assert not is_superuser(c, attacker)
    assert result.returncode == 1 and "QS012" in c.log_text()
    assert len(c.target_events("a")) == 1


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


def _position(cluster) -> tuple | None:
    rows = cluster.dst_exec("select last_tick_id, last_tick_time from qsplit.consumer where consumer_name = %s",
                            (CONSUMER,))
    return rows[0] if rows else None


def test_writer_cannot_forge_or_reset_another_consumers_position(cluster):
    """Another member of qsplit_writer forges an empty batch for our consumer
    (which moved its position past a real batch: 3 events lost) and resets
    it: both refused with QS011; every event arrives."""
    c = cluster
    ini = setup_source(c, c.write_ini(), ["a"])
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
    ini = setup_source(c, c.write_ini(), ["a"])
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
    ini = setup_source(c, c.write_ini(), ["a"])
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
    # a function of the reader's making in WHERE sees no hidden row
    with other.cursor() as cur:
        cur.execute("create function pg_temp.leak(text) returns boolean language plpgsql cost 0.0001 as"
                    " $$ begin raise notice 'leaked %', $1; return true; end $$")
        for view in ("consumer_status", "queue_status"):
            cur.execute(f"select * from qsplit.{view} where pg_temp.leak(consumer_name)")
            assert cur.fetchall() == []
    assert not [n for n in other.notices if "leaked" in n], other.notices


def test_admin_names_the_owner_of_a_consumer(cluster):
    """Moving a consumer to another driver role is an admin's act: the old
    role is refused from then on, with a hint that says what to run."""
    c = cluster
    ini = setup_source(c, c.write_ini(), ["a"])
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


# --- items 4 and 5: no routing value stops the consumer or exhausts the server


def _long_value(n: int = 8000) -> str:
    """A routing value far beyond what a btree entry takes, incompressible."""
    import base64
    import os

    return "q" + base64.b64encode(os.urandom(n)).decode()[: n - 1]


@pytest.mark.parametrize("policy", ["skip", "dead_letter", "create"])
def test_a_routing_value_of_any_length_does_not_stop_the_consumer(cluster, policy):
    """An 8 kB routing value stopped the consumer for good (btree 'index row
    size exceeds' on queue_stats, the dead-letter index, pgq's queue_name):
    now the valid events of the batch arrive and the long one gets the
    policy, with its own reason."""
    c = cluster
    ini = setup_source(c, c.write_ini(on_unknown_queue=policy), ["a"])
    poison = _long_value()
    produce(c, ["a", poison, "a", poison, "a"])
    run_ok(c, ini)
    assert len(c.target_events("a")) == 3
    assert c.dst_exec("select count(*) from pgq.queue where length(queue_name) > 1024") == [(0,)]
    stats = c.dst_exec("select action, n_events, queue_name = %s from qsplit.queue_stats where queue_name <> 'a'",
                       (poison,))
    if policy == "skip":
        assert stats == [("skipped", 2, True)]
    else:  # dead_letter, and create's fallback (dead_letter by default)
        assert stats == [("dead_letter", 2, True)]
        assert c.dst_exec("select reason, route_value = %s, ev_data from qsplit.dead_letter order by ev_id",
                          (poison,)) == [("invalid_queue_name", True, "n=1"), ("invalid_queue_name", True, "n=3")]
    # and the consumer goes on
    produce(c, ["a"])
    run_ok(c, ini)
    assert len(c.target_events("a")) == 4


def _commit_probe(cluster) -> None:
    """Record, at the commit of every transaction that counts a batch, the
    locks it holds and the synchronous_commit in force (a deferred
    constraint trigger fires inside COMMIT, just before the commit record)."""
    cluster.dst_exec(
        "create table public.commit_probe (locks bigint, sync text);"
        " create function public.commit_probe() returns trigger language plpgsql security definer"
        " set search_path = pg_catalog as $$ begin"
        "   insert into public.commit_probe select (select count(*) from pg_locks where pid = pg_backend_pid()),"
        "          current_setting('synchronous_commit');"
        "   return null; end $$;"
        " create constraint trigger commit_probe after insert or update on qsplit.consumer"
        " deferrable initially deferred for each row execute function public.commit_probe()")


@pytest.mark.parametrize("limit", [None, "100000"])
def test_create_policy_is_capped_per_batch(cluster, limit):
    """2,000 distinct unknown names in one batch with on_unknown_queue =
    create took ~40 locks each and ran the server out of shared memory, for
    good: now at most create_limit queues are made (20 by default, and
    never more than a quarter of the server's lock table allows, whatever
    create_limit says), the rest get create_fallback, and the batch holds
    far fewer locks than a default server has (max_locks_per_transaction
    64 x max_connections 100)."""
    c = cluster
    ini = c.write_ini(on_unknown_queue="create", create_limit=limit)
    setup_source(c, ini)
    ((lock_table,),) = c.dst_exec(
        "select current_setting('max_locks_per_transaction')::int"
        " * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)")
    expected = 20 if limit is None else lock_table // 160
    names = [f"new_{i:04d}" for i in range(2000)]
    produce(c, names + ["new_0007"])  # new_0007: two events, created first
    _commit_probe(c)
    run_ok(c, ini)
    created = [r for (r,) in c.dst_exec("select queue_name from pgq.queue order by 1")]
    assert len(created) == expected and "new_0007" in created
    assert c.dst_exec("select reason, count(*) from qsplit.dead_letter group by 1") == [("create_limit", 2000 - expected)]
    assert all(len(c.target_events(q)) == (2 if q == "new_0007" else 1) for q in created)
    ((locks, _sync),) = c.dst_exec("select max(locks), min(sync) from public.commit_probe")
    assert locks < (64 * 100 // 4 if limit is None else lock_table // 4 + 1000), locks


@pytest.mark.parametrize("read_ahead", ["0", "1"])
def test_create_policy_allow_list(cluster, read_ahead):
    """With create_pattern, create makes only names it allows or a route
    rule names; the others get create_fallback (here: skip).  In both
    loops (read_ahead = 1 applied with the default policies before)."""
    c = cluster
    ini = c.write_ini(on_unknown_queue="create", create_pattern=r"ok_[a-z]+", create_fallback="skip",
                      read_ahead=read_ahead)
    setup_source(c, ini)
    c.dst_exec(r"select qsplit.add_route(%s, 'ruled\.(.*)', 'Ruled-\1')", (CONSUMER,))
    produce(c, ["ok_one", "not ok", "ruled.x", "OK_two"])
    run_ok(c, ini)
    assert sorted(r for (r,) in c.dst_exec("select queue_name from pgq.queue")) == ["Ruled-x", "ok_one"]
    assert sorted(c.dst_exec("select queue_name, action, n_events from qsplit.queue_stats")) == [
        ("OK_two", "skipped", 1), ("Ruled-x", "inserted", 1), ("not ok", "skipped", 1), ("ok_one", "inserted", 1)]


# --- item 6: no route rule can hold the consumer forever

BOMB = r"(a*)(a*)(a*)(a*)(a*)(a*)(a*)(a*)\8\7\6\5\4\3\2\1"


def test_add_route_refuses_back_references(cluster):
    c = cluster
    for pattern in (BOMB, r"(x)\1", r"[\1]"):
        assert sqlstate_of(c.dst(), "select qsplit.add_route('c', %s, 't')", (pattern,)) == "QS010", pattern
    # an escaped backslash before a digit is no back-reference
    c.dst_exec(r"select qsplit.add_route('c', '(x)\\1', 't')")
    assert c.dst_exec("select count(*) from qsplit.route") == [(1,)]


@pytest.mark.parametrize("read_ahead", ["0", "1"])
def test_apply_batch_is_bounded_by_apply_timeout(cluster, read_ahead):
    """A back-reference rule from before add_route refused them (written
    into qsplit.route directly) ran without bound on a 41-character value:
    apply_timeout cancels the batch, nothing is applied, and the consumer
    runs again once the rule is gone.  In both loops (read_ahead = 1 had
    no timeout before)."""
    c = cluster
    ini = setup_source(c, c.write_ini(apply_timeout="1", read_ahead=read_ahead), ["a"])
    c.dst_exec("insert into qsplit.route (consumer_name, priority, pattern, target) values (%s, 10, %s, 'a')",
               (CONSUMER, BOMB))
    produce(c, ["a" * 41, "b"])
    before = _position(c)
    started = time.monotonic()
    result = c.run_driver("--once", str(ini), timeout=60)
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "57014" in c.log_text() or "statement timeout" in c.log_text()
    assert _position(c) == before and c.target_events("a") == []
    c.dst_exec("delete from qsplit.route")
    c.dst_exec("select pgq.create_queue('b'); select pgq.create_queue(repeat('a', 41))")
    run_ok(c, ini)
    assert len(c.target_events("b")) == 1


# --- item 10: the commit that records a batch is durable whatever the settings


def test_batch_commit_is_synchronous_whatever_the_database_sets(cluster):
    c = cluster
    c.dst_exec("select pgq.create_queue('a')")
    dbname = c.dst_exec("select current_database()")[0][0]
    c.dst_exec(f'alter database "{dbname}" set synchronous_commit = off')
    c.dst_exec(f'alter role "{DST_DRIVER_ROLE}" in database "{dbname}" set synchronous_commit = off')
    try:
        ini = c.write_ini()
        setup_source(c, ini)
        _commit_probe(c)
        for _ in range(2):
            produce(c, ["a", "a"])
            run_ok(c, ini)
        assert len(c.target_events("a")) == 4
        # the driver's sessions do run with synchronous_commit off ...
        drv = c.connect_as(DST_DRIVER_ROLE)
        with drv.cursor() as cur:
            cur.execute("show synchronous_commit")
            assert cur.fetchone() == ("off",)
        # ... but each commit that recorded a batch had it on
        ((syncs, n),) = c.dst_exec("select array_agg(distinct sync), count(*) from public.commit_probe")
        assert syncs == ["on"] and n >= 2
    finally:
        c.dst_exec(f'alter role "{DST_DRIVER_ROLE}" in database "{dbname}" reset synchronous_commit')


# ===========================================================================
# Driver, installer and local files (sec11drv): items 2, 4 (how errors are
# logged), 7, 8, 9
# ===========================================================================

# --- item 2: look-alikes planted in public (CVE-2018-1058) -----------------

PLANTER = f"{PREFIX}_planter"

# Each look-alike matches the argument types of a call qsplit (or a DBA
# following docs) makes better than the pg_catalog original does, so it wins
# whenever public is on the search_path.  Every body records that it ran and
# tries to make the planter a superuser (which works when the caller is one),
# then answers like the original so nothing else looks wrong.
_LOOKALIKE_FUNCTIONS = [
    # (name, argument types, return type)
    ("pg_advisory_xact_lock", ("integer",), "void"),
    ("pg_advisory_lock", ("integer",), "void"),
    ("pg_try_advisory_xact_lock", ("integer",), "boolean"),
    ("hashtextextended", ("text", "integer"), "bigint"),
    ("format", ("text", "text"), "text"),
    ("format", ("text", "text", "text"), "text"),
    ("format", ("text", "text", "text", "text"), "text"),
    ("concat", ("text", "text"), "text"),
    ("to_jsonb", ("text",), "jsonb"),
    ("jsonb_build_object", ("text", "bigint"), "jsonb"),
    ("jsonb_build_object", ("text", "text"), "jsonb"),
    ("array_length", ("text[]", "integer"), "integer"),
    ("unnest", ("text[]",), "setof text"),
    ("regexp_replace", ("text", "text", "text"), "text"),
]
_LOOKALIKE_AGGREGATES = [
    # (name, argument types, state type, initial state, step expression)
    ("jsonb_object_agg", ("text", "bigint"), "jsonb", "{}", "s || pg_catalog.jsonb_build_object(v0, v1)"),
    ("jsonb_object_agg", ("text", "numeric"), "jsonb", "{}", "s || pg_catalog.jsonb_build_object(v0, v1)"),
    ("jsonb_agg", ("text",), "jsonb", "[]", "s || pg_catalog.to_jsonb(v0)"),
    ("array_agg", ("text",), "text[]", "{}", "pg_catalog.array_append(s, v0)"),
]
_LOOKALIKE_OPERATORS = [
    # (operator, left, right, pg_catalog function that answers)
    ("=", "text", "character varying", "texteq"),
    ("=", "character varying", "text", "texteq"),
    ("<>", "text", "character varying", "textne"),
    ("||", "text", "integer", "textanycat"),
    ("||", "text", "bigint", "textanycat"),
    ("||", "integer", "text", "anytextcat"),
    ("||", "bigint", "text", "anytextcat"),
]


def _port(dsn: str) -> int:
    return int(re.search(r"\bport=(\d+)", dsn).group(1))


def plant_lookalikes(dsn: str) -> None:
    """As a role that is no superuser and only has CREATE on public (PG15
    grants that to nobody by default: the DBA did), plant the look-alikes."""
    # made nosuperuser again: today's code, run once, made it one
    role = cluster_role(PLANTER, port=_port(dsn))
    run_sql(dsn, sql.SQL("grant create, usage on schema public to {}").format(sql.Identifier(role)))
    planter = psycopg2.connect(dsn_as(dsn, role))
    planter.autocommit = True
    q = sql.Literal(role)
    with planter.cursor() as cur:
        cur.execute("create table public.hijacked (what text, by_role text, at timestamptz default now())")
        cur.execute("grant insert, select on public.hijacked to public")
        cur.execute(sql.SQL("""
            create function public.qsplit_hijack(what text) returns void language plpgsql as $f$
            begin
                insert into public.hijacked (what, by_role) values (what, current_user);
                begin
                    execute 'alter role ' || quote_ident({}) || ' superuser';
                exception when others then null;
                end;
            end $f$""").format(q))
        for name, args, returns in _LOOKALIKE_FUNCTIONS:
            params = ", ".join(f"${i + 1}" for i in range(len(args)))
            sig = f"public.{name}({', '.join(args)})"
            if returns == "setof text":
                body = f"select public.qsplit_hijack('{sig}'); select pg_catalog.{name}({params})"
            else:
                body = f"select public.qsplit_hijack('{sig}'); select pg_catalog.{name}({params})::{returns}"
            cur.execute(f"create function {sig} returns {returns} language sql as $f${body}$f$")
        for n, (name, args, stype, init, step_expr) in enumerate(_LOOKALIKE_AGGREGATES):
            sig = f"public.{name}({', '.join(args)})"
            step = f"public.qsplit_hijack_step_{n}"
            extra = "".join(f", v{i} {t}" for i, t in enumerate(args))
            cur.execute(f"create function {step}(s {stype}{extra}) returns {stype} language plpgsql as $f$"
                        f" begin perform public.qsplit_hijack('aggregate {sig}'); return {step_expr}; end $f$")
            cur.execute(f"create aggregate {sig} (sfunc = {step}, stype = {stype}, initcond = '{init}')")
        for i, (op, left, right, original) in enumerate(_LOOKALIKE_OPERATORS):
            fn = f"public.qsplit_hijack_op_{i}"
            ret = "boolean" if op in ("=", "<>") else "text"
            cur.execute(f"create function {fn}(l {left}, r {right}) returns {ret} language plpgsql as $f$"
                        f" begin perform public.qsplit_hijack('operator {left} {op} {right}');"
                        f" return pg_catalog.{original}(l, r); end $f$")
            cur.execute(f"create operator public.{op} (leftarg = {left}, rightarg = {right}, function = {fn})")
    planter.close()


def assert_nothing_hijacked(*dsns: str) -> None:
    ran = {}
    for dsn in dsns:
        rows = run_sql(dsn, "select what, by_role, count(*) from public.hijacked group by 1, 2 order by 1, 2")
        if rows:
            ran[dsn.rsplit("dbname=", 1)[1].split()[0]] = rows
    assert ran == {}, f"look-alikes planted in public ran: {ran}"
    for port in {_port(dsn) for dsn in dsns}:
        assert run_sql(dsn_for("postgres", port=port), "select rolsuper from pg_roles where rolname = %s",
                       (PLANTER,)) == [(False,)]


@pytest.mark.parametrize("how", ["alembic", "sql_script"])
def test_install_ignores_lookalikes_planted_in_public(how):
    with scratch_db(f"sec_install_{how}", port=PG_PORT_DST) as dsn:
        plant_lookalikes(dsn)
        if how == "alembic":
            install_qsplit(dsn)
        else:
            applied = run_psql_script(dsn, offline_script())
            assert applied.returncode == 0, applied.stderr
        assert_nothing_hijacked(dsn)
        # what the views and functions were bound to at install: nothing in
        # public, whoever reads them later and with whatever search_path
        assert run_sql(dsn, """
            select distinct pg_describe_object(d.refclassid, d.refobjid, 0)
              from pg_depend d
              join pg_rewrite r on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
              join pg_class v on v.oid = r.ev_class
             where v.relnamespace = 'qsplit'::regnamespace
               and d.refclassid in ('pg_proc'::regclass, 'pg_operator'::regclass)
               and case d.refclassid when 'pg_proc'::regclass
                        then (select pronamespace from pg_proc where oid = d.refobjid)
                        else (select oprnamespace from pg_operator where oid = d.refobjid)
                   end not in ('pg_catalog'::regnamespace, 'qsplit'::regnamespace)""") == []


# pgq's own SECURITY DEFINER functions pin no search_path (pgq.create_queue
# runs a public "varchar = text" look-alike as its owner): the test's own
# calls into pgq, standing in for the DBA and the producers, use this one
PINNED = " options='-c search_path=pg_catalog,pg_temp'"


def test_driver_and_dba_ignore_lookalikes_planted_in_public(source_pg, driver_roles, tmp_path):
    """Look-alikes on both sides, planted before the install and before the
    driver runs: the driver's sessions, its --status, the status views and
    the DBA API called from a psql-like session (search_path "$user",
    public) run pg_catalog's functions only."""
    src_role, dst_role = driver_roles
    s = source_pg.info
    src_dsn = f"host={s.host} port={s.port} user={s.user} dbname={s.dbname}"
    with scratch_db("sec_driver_dst", port=PG_PORT_DST) as dst_dsn:
        plant_lookalikes(dst_dsn)
        install_qsplit(dst_dsn)
        plant_lookalikes(src_dsn)
        c = Cluster(src_dsn=src_dsn + PINNED, dst_dsn=dst_dsn + PINNED, workdir=tmp_path,
                    driver_src_dsn=dsn_as(src_dsn, src_role), driver_dst_dsn=dsn_as(dst_dsn, dst_role))
        try:
            c.dst_exec("select pgq.create_queue('a'); select pgq.create_queue('b')")
            ini = c.write_ini(on_unknown_queue="dead_letter")
            setup_source(c, ini)
            produce(c, ["a", "b", "a", "nowhere"])
            done = c.run_driver("--once", str(ini))
            assert done.returncode == 0, done.stderr + c.log_text()
            assert len(c.target_events("a")) == 2 and len(c.target_events("b")) == 1
            status = c.run_driver("--status", str(ini))
            assert status.returncode == 0, status.stdout + status.stderr
            # a DBA at psql, public on the search_path: the views and the API
            for statement in ("select * from qsplit.consumer_status",
                              "select * from qsplit.queue_status",
                              "select qsplit.add_route('test_splitter', '^nowhere$', 'b', 10)",
                              "select qsplit.replay_dead_letters('test_splitter', null)",
                              "select qsplit.remove_route('test_splitter', '^nowhere$')",
                              "select qsplit.discard_dead_letters('test_splitter', null)",
                              "select qsplit.reset_position('test_splitter')"):
                run_sql(dst_dsn, statement)
            assert len(c.target_events("b")) == 2  # the dead letter, replayed
            assert_nothing_hijacked(src_dsn, dst_dsn)
        finally:
            c.close()


# SQL keywords that look like calls: not functions a look-alike could shadow
_NOT_CALLS = {"coalesce", "nullif", "greatest", "least", "exists", "in", "any", "all", "some", "values", "row",
              "array", "cast", "operator", "filter", "over", "select", "case", "when", "then", "else", "and",
              "or", "not", "on", "from", "where", "limit", "as", "is", "returns", "table", "using", "by"}


def test_every_qsplit_function_resolves_no_name_through_the_callers_search_path(cluster):
    """A function without a pinned search_path resolves names through its
    caller's: a DBA at psql, public on the path, would run a look-alike
    with the DBA's rights.  PL/pgSQL functions pin it; SQL functions (kept
    inlinable) call only schema-qualified functions."""
    rows = cluster.dst_exec(
        "select p.oid::regprocedure::text, l.lanname, p.proconfig, p.prosrc"
        "  from pg_proc p join pg_language l on l.oid = p.prolang"
        " where p.pronamespace = 'qsplit'::regnamespace order by 1")
    assert rows
    unpinned = []
    for name, language, config, source in rows:
        if config and "search_path=pg_catalog, pg_temp" in config:
            continue
        if language == "sql":
            body = re.sub(r"--[^\n]*|'(?:[^']|'')*'", "", source)
            bare = sorted({m for m in re.findall(r"(?<![.\w])([a-z_][a-z0-9_]*)\s*\(", body, re.IGNORECASE)
                           if m.lower() not in _NOT_CALLS})
            if not bare:
                continue
            name += f" calls {', '.join(bare)} unqualified"
        unpinned.append(name)
    assert unpinned == []


# --- item 4 (driver side): only a lost connection is logged as one ----------

def test_statement_error_is_logged_with_its_sqlstate_not_as_lost_connection(cluster):
    """A lock timeout on the target is an OperationalError to psycopg2, as a
    lost connection is: the log line must say what it is (its SQLSTATE)."""
    c = cluster
    ini = setup_source(c, c.write_ini(), ["a"])
    produce(c, ["a", "a"])
    dbname = c.dst_dsn.rsplit("dbname=", 1)[1]
    c.dst_exec(sql.SQL("alter database {} set lock_timeout = '300ms'").format(sql.Identifier(dbname)))
    holder = psycopg2.connect(c.dst_dsn)
    try:
        with holder.cursor() as cur:
            cur.execute("lock table qsplit.consumer in access exclusive mode")
        failed = c.run_driver("--once", str(ini))
    finally:
        holder.rollback()
        holder.close()
    assert failed.returncode == 1
    (line,) = [ln for ln in c.log_text().splitlines() if " ERROR " in ln]
    assert "[55P03]" in line and "lock timeout" in line, line
    assert "connection failed" not in line, line
    # nothing was lost: the next run delivers the batch
    c.dst_exec(sql.SQL("alter database {} reset lock_timeout").format(sql.Identifier(dbname)))
    done = c.run_driver("--once", str(ini))
    assert done.returncode == 0, done.stderr + c.log_text()
    assert len(c.target_events("a")) == 2


def test_error_kinds_from_a_real_server(cluster):
    """Which real errors count as a lost connection (SQLSTATE class 08,
    57P01-57P03, or a closed connection) and which are logged with their
    SQLSTATE."""
    from qsplit.config import load
    from qsplit.splitter import describe_error

    cfg = load(cluster.write_ini())

    def error_of(*statements: str) -> psycopg2.Error:
        conn = psycopg2.connect(cluster.dst_dsn)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        except psycopg2.Error as exc:
            return exc
        finally:
            conn.close()
        raise AssertionError(f"no error from {statements}")

    timeout = error_of("set statement_timeout = '10ms'", "select pg_sleep(1)")
    assert timeout.pgcode == "57014" and isinstance(timeout, psycopg2.OperationalError)
    assert "[57014]" in describe_error(timeout, cfg) and "connection failed" not in describe_error(timeout, cfg)

    terminated = error_of("select pg_terminate_backend(pg_backend_pid())")
    assert describe_error(terminated, cfg).startswith("database connection failed: ")

    conn = psycopg2.connect(cluster.dst_dsn)
    conn.close()
    try:
        conn.cursor().execute("select 1")
    except psycopg2.Error as exc:
        assert describe_error(exc, cfg).startswith("database connection failed: ")
    else:
        raise AssertionError("a closed connection ran a statement")


# --- item 7: control characters never reach a log line raw -----------------

# a routing value that, written raw, makes a line of its own that looks like
# the driver's; then the other line breaks Python's splitlines() knows, a
# terminal escape and a bidi override
FORGED = ("x\n2026-01-01 00:00:00,000 4242 INFO batch 1 (ticks 1..2) applied: forged\r"
          "FORGED-CR\x85FORGED-NEL\u2028FORGED-LS\x1b[2K\u202eFORGED-BIDI")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


@pytest.mark.parametrize("policy", ["error", "skip", "create"])
def test_routing_value_cannot_forge_log_lines(cluster, policy):
    c = cluster
    ini = setup_source(c, c.write_ini(on_unknown_queue=policy), ["a"])
    produce(c, ["a", FORGED])
    run = c.run_driver("--once", str(ini))
    assert run.returncode == (1 if policy == "error" else 0), run.stderr + c.log_text()
    text = c.log_text()
    assert "forged" in text  # the value is in the log, escaped
    assert "forged" in run.stderr or policy == "skip"  # a foreground run logs to stderr too
    text += run.stderr
    assert "\n2026-01-01 00:00:00,000 4242 " not in text
    for line in text.splitlines():  # splits on \n, \r, \x85, \u2028, ...
        assert LOG_LINE.match(line), f"a line the driver did not write: {line!r}"
    assert not any(ch in text for ch in "\r\x85\u2028\x1b\u202e")


def test_sql_errors_escape_the_routing_values_they_quote(cluster):
    """The server's own log and any client see apply_batch's message: the
    routing value it quotes must hold no raw control character (quoted as
    an E'' literal, still valid SQL for the hint's command)."""
    c = cluster
    conn = c.dst(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("select qsplit.prepare_staging()")
        conn.commit()
        row = ["1", "2026-01-02 03:04:05+00", "1000", "\\N", "t", "d",
               FORGED.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r"), "\\N", "\\N", "\\N"]
        cur.copy_expert("copy pg_temp.qsplit_staging (ev_id, ev_time, ev_txid, ev_retry, ev_type, ev_data,"
                        " ev_extra1, ev_extra2, ev_extra3, ev_extra4) from stdin", io.StringIO("\t".join(row) + "\n"))
        with pytest.raises(psycopg2.Error) as failed:
            cur.execute("select * from qsplit.apply_batch(i_consumer => 'c1', i_batch_id => 1, i_prev_tick_id => 1,"
                        " i_cur_tick_id => 2, i_queue_field => 'extra1', i_prev_tick_time => now(),"
                        " i_cur_tick_time => now(), i_on_unknown => 'error')")
    conn.rollback()
    diag = failed.value.diag
    assert failed.value.pgcode == "QS002", diag.message_primary
    for text in (diag.message_primary, diag.message_detail, diag.message_hint):
        assert text is not None and "forged" in (text + (diag.message_detail or ""))
        assert all(ch.isprintable() for ch in text), text
    assert "E'x\\n2026-01-01" in diag.message_primary + diag.message_detail


def test_control_characters_in_messages_are_escaped():
    """The same through the log set-up itself, for any record."""
    import io
    import logging

    from qsplit import logsetup

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logsetup.setup(logfile=None, log_size=0, log_count=0, level=logging.INFO)
        for handler in root.handlers:
            handler.setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("qsplit").error("value %s and %r", "a\nb\tc\x00", "d\re")
        try:
            raise ValueError("bad\n2026-01-01 00:00:00,000 1 INFO forged")
        except ValueError:
            logging.getLogger("qsplit").exception("failed on %s", "x\ny")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    lines = stream.getvalue().splitlines()
    assert all(LOG_LINE.match(ln) or ln.startswith("| ") for ln in lines), lines
    assert "value a\\nb\\tc\\x00 and 'd\\re'" in lines[0]
    assert "failed on x\\ny" in lines[1]
    assert "| ValueError: bad" in lines and "| 2026-01-01 00:00:00,000 1 INFO forged" in lines


# --- item 8: the pidfile ------------------------------------------------------

@contextmanager
def _bystander():
    """A process that is not the driver (after a reboot, any process can
    have the pid the file recorded)."""
    proc = subprocess.Popen(["sleep", "300"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("switch", ["-s", "-k", "-r"])
@pytest.mark.parametrize("how", ["plain", "locked", "symlink"])
def test_control_switches_never_signal_a_process_that_is_not_the_driver(cluster, switch, how):
    """plain: the pidfile names the bystander; locked: and the attacker holds
    a lock on the pidfile; symlink: the pidfile is a symbolic link to a
    file naming it."""
    import fcntl

    ini = cluster.write_ini()
    pidfile = cluster.workdir / "pid" / "test_splitter.pid"
    pidfile.parent.mkdir()
    with _bystander() as bystander:
        if how == "symlink":
            elsewhere = cluster.workdir / "elsewhere"
            elsewhere.write_text(f"{bystander.pid}\n")
            pidfile.symlink_to(elsewhere)
        else:
            pidfile.write_text(f"{bystander.pid}\n")
        held = open(pidfile) if how == "locked" else None
        try:
            if held is not None:
                fcntl.flock(held, fcntl.LOCK_EX)
            sent = cluster.run_driver(switch, str(ini))
        finally:
            if held is not None:
                held.close()
        assert bystander.poll() is None and process_alive(bystander.pid), "the bystander was signalled"
        assert sent.returncode != 0 or "not running" in sent.stderr, sent.stderr
        assert "Traceback" not in sent.stderr
        if how == "symlink":
            assert pidfile.is_symlink() and elsewhere.read_text() == f"{bystander.pid}\n"


def test_daemon_starts_when_the_recorded_pid_is_another_process(usecase):
    c = usecase
    ini = c.write_ini(loop_delay="0.05")
    pidfile = c.workdir / "pid" / "test_splitter.pid"
    pidfile.parent.mkdir()
    with _bystander() as bystander:
        pidfile.write_text(f"{bystander.pid}\n")
        started = c.run_driver("-d", str(ini))
        assert started.returncode == 0, started.stderr
        pid = int(wait_for(lambda: (pidfile.read_text().strip() if pidfile.exists() else "") not in ("", str(bystander.pid))
                        and pidfile.read_text().strip(), what="the daemon's pid in the pidfile"))
        try:
            wait_for(lambda: "registered consumer" in c.log_text(), what="the daemon to register its consumer")
            c.src_exec("select pgq.insert_event('singlequeue', 'ev', 'd', 'queue.event1', null, null, null)")
            c.tick()
            wait_for(lambda: len(c.target_events("queue.event1")) == 1, what="the event")
            # a second driver is refused while the first holds the pidfile
            again = c.run_driver("--once", str(ini))
            assert again.returncode == 1 and f"names running process {pid}: already running" in again.stderr, \
                again.stderr
            stopped = c.run_driver("-k", str(ini))
            assert stopped.returncode == 0, stopped.stderr
            wait_for(lambda: not process_alive(pid), what="the daemon to stop")
        finally:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert process_alive(bystander.pid)
        assert not pidfile.exists()


def test_pidfile_temp_name_symlink_is_not_followed(tmp_path):
    """The file the pidfile is first written as must be new: a symbolic
    link planted at its name is neither followed nor overwritten."""
    from qsplit import pidfile as pf

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    target = run / "job.pid"
    # the names today's code and likely variants use
    for name in (f".{target.name}.{os.getpid()}.tmp", f"{target.name}.tmp", f".{target.name}.tmp"):
        (run / name).symlink_to(victim)
    held = pf.claim(target)
    try:
        assert victim.read_text() == "precious\n"
        assert target.read_text().strip() == str(os.getpid()) and not target.is_symlink()
        assert pf.running_pid(target) == os.getpid()
    finally:
        held.release()
    assert not target.exists() and pf.running_pid(target) is None


def _planted_link(cluster, name: str, owner_uid: int | None = None):
    """The file *name* (under the test's directory) made a symbolic link to
    a victim file, owned by *owner_uid* (default: this user); returns (ini,
    the link, the victim)."""
    ini = cluster.write_ini()
    link = cluster.workdir / name
    link.parent.mkdir()
    victim = cluster.workdir / "victim"
    victim.write_text("precious\n")
    link.symlink_to(victim)
    if owner_uid is not None:
        os.lchown(link, owner_uid, -1)
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    return ini, link, victim


def test_pidfile_name_symlink_is_not_followed(cluster):
    """A symbolic link at the pidfile's own name: the driver refuses it,
    neither following it nor replacing what it points to."""
    ini, pidfile, victim = _planted_link(cluster, "pid/test_splitter.pid")
    run = cluster.run_driver("--once", str(ini))
    assert run.returncode == 3 and "symbolic link" in run.stderr, run.stderr
    assert victim.read_text() == "precious\n" and pidfile.is_symlink()


@pytest.mark.parametrize("mode", ["--once", "-d"])
def test_logfile_link_of_another_user_is_not_followed(cluster, mode):
    """A symbolic link at the logfile's name, planted by another local user
    (e.g. in a shared log directory): the driver refuses it, in the
    foreground and before daemon mode detaches, and writes nothing to the
    file it points to.  (With fs.protected_symlinks = 0, as on this
    machine, the kernel does not stop it even in a sticky directory.)"""
    ini, _, victim = _planted_link(cluster, "log/test_splitter.log", pwd.getpwnam("nobody").pw_uid)
    try:
        run = cluster.run_driver(mode, str(ini))
    finally:
        if mode == "-d":  # a daemon that started (it must not) is stopped
            cluster.run_driver("-k", str(ini))
    assert run.returncode == 3, (run.returncode, run.stderr)
    assert "logfile" in run.stderr and "symbolic link" in run.stderr, run.stderr
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("plant", ["link_chain", "dir_link", "foreign_file", "fifo", "hard_link"])
def test_logfile_planted_by_another_user_is_never_written(cluster, plant):
    """What another local user can leave at a logfile under a shared (1777)
    directory before the driver starts: a link of theirs behind a link of
    ours, a link to a directory on the way, a file of theirs (readable by
    them), a FIFO (which would block the driver), a hard link to another
    file.  The driver refuses each one in one line, exit 3, and writes
    nothing anywhere it leads."""
    nobody = pwd.getpwnam("nobody").pw_uid
    shared = cluster.workdir / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = cluster.workdir / "victim"
    victim.write_text("precious\n")
    victim_dir = cluster.workdir / "victimdir"
    victim_dir.mkdir()
    sub = shared / "sub"
    if plant == "dir_link":
        sub.symlink_to(victim_dir)
        os.lchown(sub, nobody, -1)
    else:
        sub.mkdir()
    logfile = sub / "q.log"
    if plant == "link_chain":
        theirs = shared / "theirs"
        theirs.symlink_to(victim)
        os.lchown(theirs, nobody, -1)
        logfile.symlink_to(theirs)  # ours, pointing at theirs
    elif plant == "foreign_file":
        logfile.write_text("")
        os.chown(logfile, nobody, -1)
        logfile.chmod(0o666)
    elif plant == "fifo":
        os.mkfifo(logfile)
    elif plant == "hard_link":
        os.link(victim, logfile)
    ini = cluster.write_ini(logfile=str(logfile))
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    run = cluster.run_driver("--once", str(ini), timeout=60)
    assert run.returncode == 3, (run.returncode, run.stderr)
    assert "logfile" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert victim.read_text() == "precious\n" and list(victim_dir.iterdir()) == []
    if plant == "foreign_file":
        assert logfile.read_text() == ""


def test_logfile_link_of_the_drivers_own_user_is_followed(cluster):
    """A DBA's own link (the driver's user or root) still works, as it did:
    an existing deployment with a linked log file runs unchanged."""
    ini, _, victim = _planted_link(cluster, "log/test_splitter.log", os.geteuid())
    run = cluster.run_driver("--once", str(ini))
    assert run.returncode == 0, run.stderr
    assert victim.read_text().startswith("precious\n") and "starting: queue" in victim.read_text()


def _reload_running(c, ini, edit, logged: str) -> Driver:
    """Start a driver on *ini*, *edit* the files, SIGHUP it, wait until its
    log says *logged*, check that it still moves a batch, stop it; returns
    the stopped Driver (its output)."""
    driver = Driver(c, str(ini))
    try:
        wait_for(lambda: f" {driver.pid} INFO starting:" in c.log_text(), what="the driver to start")
        edit()
        driver.signal(signal.SIGHUP)
        wait_for(lambda: logged in c.log_text(), what=f"{logged!r} in the log")
        produce(c, ["a"])
        wait_for(lambda: len(c.target_events("a")) == 1, what="a batch after the reload")
    finally:
        driver.stop(signal.SIGTERM, timeout=30)
    return driver


def test_reload_onto_a_logfile_link_of_another_user_keeps_the_old_log(cluster):
    """SIGHUP with logfile now naming another user's link: the reload is
    refused (logged in the old file), the driver runs on, the link's target
    stays untouched."""
    c = cluster
    ini = setup_source(c, c.write_ini(loop_delay="0.05"), ["a"])
    victim = c.workdir / "victim"
    victim.write_text("precious\n")
    link = c.workdir / "log" / "other.log"

    def edit() -> None:
        link.symlink_to(victim)
        os.lchown(link, pwd.getpwnam("nobody").pw_uid, -1)
        ini.write_text(ini.read_text().replace("%(job_name)s.log", "other.log"))

    driver = _reload_running(c, ini, edit, "reload failed")
    assert "symbolic link owned by uid" in c.log_text()
    assert victim.read_text() == "precious\n"
    assert "Traceback" not in driver.stderr()


# --- item 9: connection strings are read literally and never echoed ---------

SECRET = "s3cr%3&et-tail-9f"


def _dsn_with_secret(dsn: str) -> str:
    # a password with %, and an application_name that shows the DSN reached
    # libpq exactly as written (the test server trusts, so a password is
    # accepted whatever it is)
    return f"{dsn} password={SECRET} application_name=qs%(job_name)s%%pct"


def test_percent_in_connection_string_is_literal_and_never_echoed(cluster):
    from qsplit.config import load

    c = cluster
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini(src_db=_dsn_with_secret(c.driver_src_dsn), dst_db=_dsn_with_secret(c.driver_dst_dsn))
    cfg = load(ini)
    assert cfg.src_db == _dsn_with_secret(c.driver_src_dsn)
    assert cfg.dst_db == _dsn_with_secret(c.driver_dst_dsn)
    c.src_exec("select pgq.create_queue('singlequeue')")
    first = c.run_driver("--once", "-v", str(ini))
    assert first.returncode == 0, first.stderr + c.log_text()
    produce(c, ["a"])
    second = c.run_driver("--once", "-vv", str(ini))
    assert second.returncode == 0, second.stderr + c.log_text()
    assert len(c.target_events("a")) == 1
    for text in (first.stderr, second.stderr, c.log_text()):
        assert "et-tail" not in text and "password" not in text


def test_connection_string_written_for_queue_splitter_reads_as_it_did(cluster):
    """A queue_splitter ini works unchanged: its connection strings
    interpolate as the original reads them (%% is one %, %(job_name)s
    expands), with no warning; only a value the original could not read at
    all (test above) is taken as written, with a warning naming the key."""
    from qsplit.config import load

    c = cluster
    written = f"{c.driver_src_dsn} password=a%%b application_name=%(job_name)s_src"
    ini = c.write_ini(src_db=written)
    cfg = load(ini)
    assert cfg.src_db == f"{c.driver_src_dsn} password=a%b application_name={cfg.job_name}_src"
    assert not [w for w in cfg.warnings if "src_db" in w], cfg.warnings
    lone = load(c.write_ini("lone.ini", src_db=f"{c.driver_src_dsn} password={SECRET}"))
    assert lone.src_db == f"{c.driver_src_dsn} password={SECRET}"
    assert [w for w in lone.warnings if "src_db" in w and "et-tail" not in w], lone.warnings
    # the interpolated string is the one libpq gets
    setup_source(c, ini, ["a"])
    produce(c, ["a"])
    run = c.run_driver("--once", str(ini))
    assert run.returncode == 0, run.stderr + c.log_text()
    assert len(c.target_events("a")) == 1


def test_connection_string_never_echoed_on_bad_config(tmp_path):
    """Whatever is wrong with the file, no message shows a connection
    string's value."""
    cases = {
        "no_section": f"src_db = dbname=x password={SECRET}\n[queue_splitter]\n",
        "bad_dsn": f"[queue_splitter]\nsrc_db = dbname=x password={SECRET} 'open\ndst_db = dbname=y\n"
                   "pgq_queue_name = q\n",
        "interpolated": f"[queue_splitter]\nsrc_db = dbname=x password={SECRET}\ndst_db = dbname=y\n"
                        "pgq_queue_name = q\nlogfile = /tmp/%(src_db)s.log\n",
        "bad_line": f"[queue_splitter]\nsrc_db = dbname=x\n password={SECRET}\n  \tx\nnot a key line {SECRET}\n",
    }
    for name, text in cases.items():
        ini = tmp_path / f"{name}.ini"
        ini.write_text(text)
        for args in (["--once"], ["--ini"], ["-s"], ["--status"]):
            out = run_driver(*args, str(ini), cwd=tmp_path, timeout=60)
            assert "et-tail" not in out.stdout + out.stderr, (name, args, out.stdout + out.stderr)


def test_reload_never_writes_a_connection_string_to_the_logfile(cluster):
    c = cluster
    ini = setup_source(c, c.write_ini(loop_delay="0.05"), ["a"])
    driver = _reload_running(
        c, ini, lambda: ini.write_text(ini.read_text().replace(c.driver_src_dsn, _dsn_with_secret(c.driver_src_dsn))),
        "reload")
    out, err = driver.stdout(), driver.stderr()
    assert "et-tail" not in c.log_text() + out + err
    assert "Traceback" not in err, err
    assert "reload failed" not in c.log_text()
    # the log file is not world-readable
    assert (c.workdir / "log" / "test_splitter.log").stat().st_mode & 0o007 == 0
