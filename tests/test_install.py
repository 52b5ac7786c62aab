"""make install-sql: brings a target to head, is a no-op the second time, and
refuses a target without pgq with one clear line."""

from __future__ import annotations

import re
import subprocess

import psycopg2
import pytest

from helpers import REPO, make_install_sql, schema_dump

# also run on every other supported PostgreSQL major (make test-matrix)
pytestmark = pytest.mark.matrix


@pytest.fixture
def empty_db(target_pg):
    """A fresh database with neither pgq nor qsplit (the target template's
    clone, emptied)."""
    dsn = f"host={target_pg.info.host} port={target_pg.info.port} user={target_pg.info.user} dbname={target_pg.info.dbname}"
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("drop schema qsplit cascade; drop extension pgq cascade")
    conn.close()
    return dsn


def test_install_sql_twice_is_a_no_op(empty_db):
    conn = psycopg2.connect(empty_db)
    conn.autocommit = True
    conn.cursor().execute("create extension pgq")
    conn.close()

    first = make_install_sql(empty_db)
    assert first.returncode == 0, first.stderr
    dump1 = schema_dump(empty_db)
    assert "FUNCTION qsplit.apply_batch" in dump1 and "TABLE qsplit.consumer" in dump1

    second = make_install_sql(empty_db)
    assert second.returncode == 0, second.stderr
    assert "Running upgrade" not in second.stderr
    assert schema_dump(empty_db) == dump1


def test_install_sql_without_pgq_says_how_to_fix(empty_db):
    result = make_install_sql(empty_db)
    assert result.returncode != 0
    # make's own "make[1]: *** ... Error" trailer is not qsplit's output
    lines = [l for l in result.stderr.splitlines() if l.strip() and not re.match(r"make(\[\d+\])?:", l)]
    assert len(lines) == 1, result.stderr
    assert "no pgq extension" in lines[0] and "CREATE EXTENSION pgq" in lines[0]
    assert "Traceback" not in result.stderr
    conn = psycopg2.connect(empty_db)
    with conn.cursor() as cur:
        cur.execute("select to_regclass('qsplit.consumer')")
        assert cur.fetchone() == (None,)  # nothing half-installed
    conn.close()


def test_install_sql_needs_a_dsn():
    result = subprocess.run(["make", "-s", "install-sql"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0 and "usage: make install-sql DSN=" in result.stderr
