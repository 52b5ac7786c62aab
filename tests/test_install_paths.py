"""Every install path gives the same target: the offline SQL script, an
upgrade from each older revision (online, and with the offline upgrade
script) — the same `pg_dump --schema-only` as `make install-sql`, and the
same SQL-level and end-to-end apply tests pass against each (the pgmq habit:
upgrade, then run the tests).

Those apply tests are marked ``every_install_path`` where they live
(test_apply_batch.py, test_split.py): conftest runs each of them again on a
target installed along every path here (helpers.install_paths)."""

from __future__ import annotations

import pytest

from helpers import install_paths, install_via, make_install_sql, run_sql, schema_dump, scratch_db
from qsplit import install

# also run on every other supported PostgreSQL major (make test-matrix)
pytestmark = pytest.mark.matrix

PATHS = install_paths()


@pytest.fixture(scope="module")
def reference_dump() -> str:
    """The schema `make install-sql` (alembic upgrade head) gives."""
    with scratch_db("ref_alembic") as dsn:
        result = make_install_sql(dsn)
        assert result.returncode == 0, result.stderr
        dump = schema_dump(dsn)
    assert "FUNCTION qsplit.apply_batch" in dump and "TABLE qsplit.alembic_version" in dump
    return dump


@pytest.mark.parametrize("path", PATHS)
def test_schema_equals_make_install_sql(path, reference_dump):
    with scratch_db(f"dump_{path}") as dsn:
        install_via(path, dsn)
        assert schema_dump(dsn) == reference_dump
        # the revision is recorded, so a later `make install-sql` knows where it stands
        assert run_sql(dsn, "select version_num from qsplit.alembic_version") == [(install.head_revision(),)]
