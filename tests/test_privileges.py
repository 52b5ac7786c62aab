"""Least privilege: the driver runs as non-superuser roles on both sides (a
PgQ consumer on the source, qsplit_writer on the target), the SECURITY
DEFINER functions refuse a staging table of the caller's making, and the
migration's roles survive a downgrade that other databases still need."""

from __future__ import annotations

import psycopg2
import pytest

from helpers import (CONSUMER, DST_DRIVER_ROLE, PREFIX, SRC_DRIVER_ROLE, cluster_role, dsn_as, install_qsplit, produce,
                     run_ok, setup_source, source_by_route)

# also run on every other supported PostgreSQL major, and with source and
# target on the oldest and the newest (make test-matrix)
pytestmark = [pytest.mark.matrix, pytest.mark.mixed]


def refused(conn, sql: str, args=None) -> str:
    with pytest.raises(psycopg2.Error) as exc:
        with conn.cursor() as cur:
            cur.execute(sql, args)
    return exc.value.pgcode


def test_non_superuser_drivers_move_a_full_stream(cluster):
    c = cluster
    # the roles the tests' drivers use: no superuser, one membership each
    # (each on its side's server: source and target may be two servers)
    for exec_sql, role, member_of in ((c.src_exec, SRC_DRIVER_ROLE, ["pgq_reader"]),
                                      (c.dst_exec, DST_DRIVER_ROLE, ["qsplit_writer"])):
        assert exec_sql(
            "select r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,"
            "       array(select g.rolname::text from pg_auth_members m join pg_roles g on g.oid = m.roleid"
            "              where m.member = r.oid order by 1)"
            "  from pg_roles r where r.rolname = %s", (role,)) == [(False, False, False, False, member_of)]
    ini = c.write_ini()
    assert f"user={SRC_DRIVER_ROLE} " in ini.read_text() and f"user={DST_DRIVER_ROLE} " in ini.read_text()
    queues = ["a", "b", "c"]
    for q in queues:
        c.dst_exec("select pgq.create_queue(%s)", (q,))
    setup_source(c, ini)
    produce(c, queues, per_batch=500, batches=4)
    run_ok(c, ini)
    by_route = source_by_route(c)
    assert sum(len(v) for v in by_route.values()) == 2000
    for q in queues:
        assert c.target_events(q) == by_route[q]

    # what the driver's target role can NOT do by itself
    drv = c.connect_as(DST_DRIVER_ROLE)
    (table,) = c.dst_exec("select queue_data_pfx from pgq.queue where queue_name = 'a'")[0]
    assert refused(drv, f"insert into {table} (ev_time, ev_data) values (now(), 'x')") == "42501"
    assert refused(drv, "select pgq.create_queue('mine')") == "42501"
    assert refused(drv, "select * from qsplit.consumer") == "42501"
    assert refused(drv, "select qsplit.add_route('x', 'y', 'z')") == "42501"
    assert refused(drv, "select qsplit._route_target('x', 'y')") == "42501"


def test_driver_without_the_grant_fails_clearly(cluster):
    c = cluster
    nobody = cluster_role(f"{PREFIX}_nobody")
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini(dst_db=dsn_as(c.dst_dsn, nobody))
    c.src_exec("select pgq.create_queue('singlequeue')")
    result = c.run_driver("--once", str(ini))
    assert result.returncode == 1
    assert "permission denied for schema qsplit" in c.log_text()
    assert "Traceback" not in c.log_text() + result.stderr


def test_dba_role_manages_routes_and_dead_letters(cluster):
    c = cluster
    dba = c.connect_as(cluster_role(f"{PREFIX}_dba", "qsplit_admin"))
    ini = c.write_ini(on_unknown_queue="dead_letter")
    setup_source(c, ini)
    with dba.cursor() as cur:
        cur.execute(r"select qsplit.add_route(%s, 'old\.(.*)', 'new_\1')", (CONSUMER,))
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd', 'old.x', NULL, NULL, NULL)")
    c.tick()
    run_ok(c, ini)
    with dba.cursor() as cur:
        cur.execute("select queue_name, reason from qsplit.dead_letter")
        assert cur.fetchall() == [("new_x", "unknown_queue")]
        c.dst_exec("select pgq.create_queue('new_x')")
        cur.execute("select qsplit.replay_dead_letters(%s)", (CONSUMER,))
        assert cur.fetchone() == (1,)
        # a DBA of routes is no driver
        assert refused(dba, "select * from qsplit.apply_batch('x', 1, 1, 2)") == "42501"
    assert [ev[3] for ev in c.target_events("new_x")] == ["old.x"]


@pytest.mark.parametrize("trick", ["view", "row_security", "column_type", "child_table"])
def test_staging_tricks_are_refused_inside_security_definer(cluster, trick):
    """The driver's role owns pg_temp.qsplit_staging; apply_batch reads it with
    its owner's rights, so it must not be a view, carry a policy, a foreign
    column type or child tables the caller made."""
    c = cluster
    c.dst_exec("select pgq.create_queue('a')")
    drv = c.connect_as(DST_DRIVER_ROLE)
    cols = ("ev_id bigint, ev_time timestamptz, ev_txid bigint, ev_retry int4, ev_type text, ev_data text,"
            " ev_extra1 text, ev_extra2 text, ev_extra3 text, ev_extra4 text")
    # would run with the definer's rights if it were ever called from there
    evil = ("create function pg_temp.evil() returns boolean language plpgsql as"
            " $$ begin create table public.qs_pwned (); return true; end $$")
    setup = {
        "view": [evil, "create temp view qsplit_staging as select 1::bigint as ev_id, now() as ev_time,"
                       " 1::bigint as ev_txid, 0 as ev_retry, 't'::text as ev_type, 'd'::text as ev_data,"
                       " 'a'::text as ev_extra1, null::text as ev_extra2, null::text as ev_extra3,"
                       " null::text as ev_extra4 where pg_temp.evil()"],
        "row_security": [evil, f"create temp table qsplit_staging ({cols})",
                         "alter table pg_temp.qsplit_staging enable row level security",
                         "create policy p on pg_temp.qsplit_staging using (pg_temp.evil())"],
        "column_type": [f"create temp table qsplit_staging ({cols}, extra xml)"],
        "child_table": [f"create temp table qsplit_staging ({cols})",
                        "create temp table qsplit_staging_child () inherits (pg_temp.qsplit_staging)"],
    }[trick]
    with drv.cursor() as cur:
        for stmt in setup:
            cur.execute(stmt)
        cur.execute("insert into pg_temp.qsplit_staging (ev_id, ev_time, ev_extra1) values (1, now(), 'a')"
                    if trick != "view" else "select 1")
    assert refused(drv, "select * from qsplit.apply_batch('c', 1, 1, 2)") == "QS009"
    assert c.dst_exec("select to_regclass('public.qs_pwned')") == [(None,)]
    assert c.target_events("a") == []
    assert c.dst_exec("select count(*) from qsplit.consumer") == [(0,)]


def test_migration_roles_idempotent_and_kept_while_used(cluster):
    c = cluster
    install_qsplit(c.dst_dsn)  # again: roles exist, nothing fails
    from qsplit import install

    install.downgrade(c.dst_dsn, "base")
    # other databases (this run's template, other tests) still hold grants to
    # the roles, so the downgrade keeps them, but this database has no trace
    assert c.dst_exec("select count(*) from pg_roles where rolname in ('qsplit_writer', 'qsplit_admin')") == [(2,)]
    assert c.dst_exec("select count(*) from pg_shdepend d join pg_database db on db.oid = d.dbid"
                      " where db.datname = current_database()"
                      "   and d.refobjid in (select oid from pg_roles where rolname like 'qsplit\\_%')") == [(0,)]
    assert c.dst_exec("select to_regclass('qsplit.route'), to_regclass('qsplit.dead_letter')") == [(None, None)]
    install_qsplit(c.dst_dsn)
    c.dst_exec("select pgq.create_queue('a')")
    ini = c.write_ini()
    setup_source(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd', 'a', NULL, NULL, NULL)")
    c.tick()
    run_ok(c, ini)  # the driver role has its grants back
    assert len(c.target_events("a")) == 1


def test_functions_owned_by_a_non_superuser(cluster):
    """A site that does not let superusers own code: every qsplit object
    owned by a plain role with the pgq rights it needs.  The staging table
    the driver's role owns is then read by that owner: prepare_staging
    grants it SELECT."""
    c = cluster
    owner = f"{PREFIX}_owner"
    for (stmt,) in c.dst_exec(
        "select format('create role %%I nologin', %s::text) from (select 1) one"
        " where not exists (select 1 from pg_roles where rolname = %s)", (owner, owner)):
        c.dst_exec(stmt)
    c.dst_exec(f'grant pgq_admin, pgq_writer to "{owner}"')
    c.dst_exec(f'alter schema qsplit owner to "{owner}"')
    for (stmt,) in c.dst_exec(
        "select format('alter %%s %%s owner to %%I', case when c.relkind = 'S' then 'sequence' else 'table' end,"
        "              c.oid::regclass, %s::text)"
        "  from pg_class c where c.relnamespace = 'qsplit'::regnamespace and c.relkind in ('r', 'S')"
        "   and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'i')", (owner,)):
        c.dst_exec(stmt)
    for (stmt,) in c.dst_exec(
        "select format('alter function %%s owner to %%I', p.oid::regprocedure, %s::text)"
        "  from pg_proc p where p.pronamespace = 'qsplit'::regnamespace", (owner,)):
        c.dst_exec(stmt)
    assert c.dst_exec("select count(*) from pg_proc p where p.pronamespace = 'qsplit'::regnamespace"
                      " and p.proowner <> %s::regrole", (owner,)) == [(0,)]

    ini = c.write_ini(on_unknown_queue="create")
    setup_source(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'd' || i, 'q' || i % 2, NULL, NULL, NULL)"
               "  from generate_series(1, 50) i")
    c.tick()
    run_ok(c, ini)
    by_route = source_by_route(c)
    assert c.target_events("q0") == by_route["q0"] and c.target_events("q1") == by_route["q1"]
