"""Fixtures: a fresh source and a fresh target database per test, cloned by
pytest-postgresql from templates built once per session (source: pgq;
target: pgq + the qsplit schema at head), on the running local server.
The helpers the tests call live in helpers.py.

A test marked ``every_install_path`` runs once on the template's target
(alembic upgrade head) and once more on a target installed along each other
install path (helpers.install_paths): the same test proves every path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_postgresql import factories

from helpers import (DST_DRIVER_ROLE, PG_HOST, PG_PORT_DST, PG_PORT_SRC, PG_USER, PREFIX, REPO, SRC_DRIVER_ROLE,
                     Cluster, cluster_role, dsn_as, install_paths, install_qsplit, install_via, run_sql, scratch_db,
                     dsn_for)


def _conninfo(kwargs: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in kwargs.items() if k in ("host", "port", "user", "dbname", "password") and v)


def load_source(**kwargs) -> None:
    run_sql(_conninfo(kwargs), "create extension if not exists pgq")


def load_target(**kwargs) -> None:
    run_sql(_conninfo(kwargs), "create extension if not exists pgq")
    install_qsplit(_conninfo(kwargs))


source_server = factories.postgresql_noproc(
    host=PG_HOST, port=PG_PORT_SRC, user=PG_USER, dbname=f"{PREFIX}_src", load=[load_source]
)
target_server = factories.postgresql_noproc(
    host=PG_HOST, port=PG_PORT_DST, user=PG_USER, dbname=f"{PREFIX}_dst", load=[load_target]
)
source_pg = factories.postgresql("source_server")
target_pg = factories.postgresql("target_server")

TEMPLATE = "template"  # the install path of target_pg: alembic upgrade head


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `uses_source`: the test has a source database (through `cluster` or
    # `source_pg`), so a source/target pair of two majors means something to it
    for item in items:
        if "source_pg" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.uses_source)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("every_install_path"):
        metafunc.parametrize("target_dsn", [TEMPLATE] + install_paths(), indirect=True)


@pytest.fixture
def target_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test's target database: the template's clone, or (parameter of an
    ``every_install_path`` test) a scratch one installed along that path."""
    path = getattr(request, "param", TEMPLATE)
    if path == TEMPLATE:
        dst = request.getfixturevalue("target_pg").info
        yield f"host={dst.host} port={dst.port} user={dst.user} dbname={dst.dbname}"
        return
    with scratch_db(f"path_{path}", port=PG_PORT_DST) as dsn:
        install_via(path, dsn)
        yield dsn


@pytest.fixture(scope="session")
def driver_roles(source_server, target_server) -> tuple[str, str]:
    """The drivers' login roles (made once), each on its side's server.
    Depends on the templates, whose set-up made pgq_reader and qsplit_writer."""
    cluster_role(SRC_DRIVER_ROLE, "pgq_reader", port=PG_PORT_SRC)
    cluster_role(DST_DRIVER_ROLE, "qsplit_writer", port=PG_PORT_DST)
    return SRC_DRIVER_ROLE, DST_DRIVER_ROLE


@pytest.fixture
def cluster(source_pg, target_dsn, driver_roles, tmp_path: Path) -> Iterator[Cluster]:
    """The source and target databases of one test.  The tests speak as the
    superuser; the driver they run logs in as the non-superuser driver roles."""
    src = source_pg.info
    src_dsn = f"host={src.host} port={src.port} user={src.user} dbname={src.dbname}"
    src_role, dst_role = driver_roles
    c = Cluster(
        src_dsn=src_dsn,
        dst_dsn=target_dsn,
        workdir=tmp_path,
        driver_src_dsn=dsn_as(src_dsn, src_role),
        driver_dst_dsn=dsn_as(target_dsn, dst_role),
    )
    yield c
    c.close()


@pytest.fixture
def ascii_source(cluster: Cluster) -> Iterator[Cluster]:
    """A source database in SQL_ASCII (bytes stored unchecked), with pgq."""
    with scratch_db("ascii_src", encoding="SQL_ASCII") as dsn:
        name = run_sql(dsn, "select current_database()")[0][0]
        c = Cluster(src_dsn=dsn, dst_dsn=cluster.dst_dsn, workdir=cluster.workdir,
                    driver_src_dsn=dsn_for(name, SRC_DRIVER_ROLE), driver_dst_dsn=cluster.driver_dst_dsn)
        try:
            yield c
        finally:
            c.close()


@pytest.fixture
def usecase(cluster: Cluster) -> Cluster:
    """The seed's USECASE on the source: schema queue, tables queue.event1 and
    queue.event2 whose BEFORE INSERT trigger pgq.logutriga('singlequeue',
    'SKIP') turns every insert into an event; target queues of those names."""
    cluster.src_exec((REPO / "tests" / "sql" / "usecase_source.sql").read_text())
    cluster.dst_exec("select pgq.create_queue('queue.event1'); select pgq.create_queue('queue.event2');")
    return cluster
