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
    host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=f"{PREFIX}_src", load=[load_source]
)
target_server = factories.postgresql_noproc(
    host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=f"{PREFIX}_dst", load=[load_target]
)
source_pg = factories.postgresql("source_server")
target_pg = factories.postgresql("target_server")


@pytest.fixture
def cluster(source_pg, target_pg, tmp_path: Path) -> Cluster:
    """The source and target databases of one test, with helpers to produce,
    tick, run the driver and read the target queues back."""
    src = source_pg.info
    dst = target_pg.info
    c = Cluster(
        src_dsn=f"host={src.host} port={src.port} user={src.user} dbname={src.dbname}",
        dst_dsn=f"host={dst.host} port={dst.port} user={dst.user} dbname={dst.dbname}",
        workdir=tmp_path,
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
