"""Helpers for the deployment tests: scratch databases of this test run, the
ways a DBA can bring a target's qsplit schema to head, and schema dumps."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import psycopg2
from psycopg2 import sql

from conftest import PG_HOST, PG_PORT, PG_USER, PREFIX
from helpers import run_sql as exec_sql  # noqa: F401  (the tests import it from here)
from qsplit import install


def dsn_for(dbname: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname}"


def _admin(statement: sql.Composable) -> None:
    conn = psycopg2.connect(dsn_for("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


@contextmanager
def scratch_db(tag: str, pgq: bool = True) -> Iterator[str]:
    """A fresh database named <prefix>_<tag> (this run's prefix: never another
    run's), with the pgq extension unless *pgq* is false; dropped afterwards."""
    name = f"{PREFIX}_{tag}"[:63]
    _admin(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    _admin(sql.SQL("create database {} template template0").format(sql.Identifier(name)))
    dsn = dsn_for(name)
    try:
        if pgq:
            exec_sql(dsn, "create extension pgq")
        yield dsn
    finally:
        _admin(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@cache
def offline_script(from_revision: str | None = None) -> str:
    """The offline SQL script (what `make sql-script [FROM=...]` writes)."""
    return install.sql_script(from_revision)


def run_psql_script(dsn: str, text: str) -> subprocess.CompletedProcess:
    """Apply an SQL script the way the DBA docs say: psql, stop at the first error."""
    return subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", "-"],
        input=text, capture_output=True, text=True, timeout=120,
    )


def apply_offline_script(dsn: str, from_revision: str | None = None) -> None:
    result = run_psql_script(dsn, offline_script(from_revision))
    assert result.returncode == 0, result.stderr


def upgrade_starts() -> list[str]:
    """The revisions an existing target may be at before an upgrade to head:
    every revision but head (the oldest alone while there is only one)."""
    revs = install.revisions()
    return revs[:-1] or revs[:1]


def install_paths() -> list[str]:
    """Every way to bring a target with pgq to head, other than a fresh
    `alembic upgrade head` (the test templates' own path):
      sql_script           the offline install script, applied with psql
      upgrade_from_<rev>   alembic upgrade to <rev>, then to head
      sql_upgrade_<rev>    alembic upgrade to <rev>, then the offline upgrade
                           script FROM=<rev>, applied with psql"""
    paths = ["sql_script"]
    for rev in upgrade_starts():
        paths += [f"upgrade_from_{rev}", f"sql_upgrade_{rev}"]
    return paths


def install_via(path: str, dsn: str) -> None:
    """Bring *dsn* (pgq, no qsplit) to head along *path* (see install_paths)."""
    if path == "alembic":
        install.upgrade(dsn)
    elif path == "sql_script":
        apply_offline_script(dsn)
    elif path.startswith("upgrade_from_"):
        install.upgrade(dsn, path.removeprefix("upgrade_from_"))
        install.upgrade(dsn, "head")
    elif path.startswith("sql_upgrade_"):
        rev = path.removeprefix("sql_upgrade_")
        install.upgrade(dsn, rev)
        apply_offline_script(dsn, rev)
    else:
        raise ValueError(f"unknown install path {path!r}")
