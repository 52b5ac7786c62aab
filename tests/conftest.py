"""Fixtures: a fresh source and a fresh target database per test, cloned by
pytest-postgresql from templates built once per session (source: pgq;
target: pgq + the qsplit schema at head), on the running local server."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import pytest
from pytest_postgresql import factories

from helpers import REPO, Cluster, install_qsplit

PG_HOST = os.environ.get("PGHOST_TEST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
# source and target may live on two servers, even of two majors:
# PGPORT_SRC / PGPORT_DST (make test-matrix's mixed pairs), or
# QSPLIT_TEST_TARGET_PORT for the target (make test-two-servers, on the
# cluster scripts/target-cluster.sh starts); unset, both live on PGPORT
PG_PORT_SRC = int(os.environ.get("PGPORT_SRC") or PG_PORT)
PG_PORT_DST = int(os.environ.get("PGPORT_DST") or os.environ.get("QSPLIT_TEST_TARGET_PORT") or PG_PORT)
TARGET_PORT = PG_PORT_DST
TWO_SERVERS = PG_PORT_SRC != PG_PORT_DST
PG_USER = os.environ.get("PGUSER") or getpass.getuser()
# distinct names let two test runs share one server (e.g. a developer and CI)
PREFIX = os.environ.get("QSPLIT_TEST_DB_PREFIX", "qsplit_test")


def _connect_kwargs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k in ("host", "port", "user", "dbname", "password") and v}


def load_source(**kwargs) -> None:
    import psycopg

    with psycopg.connect(**_connect_kwargs(kwargs), autocommit=True) as conn:
        conn.execute("create extension if not exists pgq")


def load_target(**kwargs) -> None:
    import psycopg

    with psycopg.connect(**_connect_kwargs(kwargs), autocommit=True) as conn:
        conn.execute("create extension if not exists pgq")
    install_qsplit(_connect_kwargs(kwargs))


source_server = factories.postgresql_noproc(
    host=PG_HOST, port=PG_PORT_SRC, user=PG_USER, dbname=f"{PREFIX}_src", load=[load_source]
)
target_server = factories.postgresql_noproc(
    host=PG_HOST, port=PG_PORT_DST, user=PG_USER, dbname=f"{PREFIX}_dst", load=[load_target]
)
source_pg = factories.postgresql("source_server")
target_pg = factories.postgresql("target_server")

# the drivers of the tests log in as these non-superuser roles: on the source
# a PgQ consumer (pgq_reader), on the target qsplit_writer and nothing else
SRC_DRIVER_ROLE = f"{PREFIX}_src_driver"
DST_DRIVER_ROLE = f"{PREFIX}_dst_driver"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `uses_source`: the test has a source database (through `cluster` or
    # `source_pg`), so a source/target pair of two majors means something to it
    for item in items:
        if "source_pg" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.uses_source)


@pytest.fixture(scope="session")
def driver_roles(source_server, target_server) -> tuple[str, str]:
    """Create the drivers' login roles once (roles are cluster-wide; made
    only when missing, so parallel runs with other prefixes do not collide),
    each on its side's server.  Depends on the templates, whose set-up made
    pgq_reader and qsplit_writer."""
    import psycopg

    for port, role, member_of in ((PG_PORT_SRC, SRC_DRIVER_ROLE, "pgq_reader"),
                                  (PG_PORT_DST, DST_DRIVER_ROLE, "qsplit_writer")):
        with psycopg.connect(host=PG_HOST, port=port, user=PG_USER, dbname="postgres", autocommit=True) as conn:
            for (stmt,) in conn.execute(
                "select format('create role %%I login nosuperuser', %s::text)"
                " where not exists (select 1 from pg_roles where rolname = %s)",
                (role, role),
            ).fetchall():
                conn.execute(stmt)
            conn.execute(f'grant {member_of} to "{role}"')
    return SRC_DRIVER_ROLE, DST_DRIVER_ROLE


@pytest.fixture
def cluster(source_pg, target_pg, driver_roles, tmp_path: Path) -> Cluster:
    """The source and target databases of one test, with helpers to produce,
    tick, run the driver and read the target queues back.  The tests speak
    as the superuser; the driver they run logs in as the non-superuser
    driver roles."""
    src = source_pg.info
    dst = target_pg.info
    src_role, dst_role = driver_roles
    c = Cluster(
        src_dsn=f"host={src.host} port={src.port} user={src.user} dbname={src.dbname}",
        dst_dsn=f"host={dst.host} port={dst.port} user={dst.user} dbname={dst.dbname}",
        workdir=tmp_path,
        driver_src_dsn=f"host={src.host} port={src.port} user={src_role} dbname={src.dbname}",
        driver_dst_dsn=f"host={dst.host} port={dst.port} user={dst_role} dbname={dst.dbname}",
    )
    yield c
    c.close()


@pytest.fixture
def usecase(cluster: Cluster) -> Cluster:
    """The seed's USECASE on the source: schema queue, tables queue.event1 and
    queue.event2 whose BEFORE INSERT trigger pgq.logutriga('singlequeue',
    'SKIP') turns every insert into an event; target queues of those names."""
    cluster.src_exec((REPO / "tests" / "sql" / "usecase_source.sql").read_text())
    cluster.dst_exec("select pgq.create_queue('queue.event1'); select pgq.create_queue('queue.event2');")
    return cluster
