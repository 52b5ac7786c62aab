"""Every install path gives the same target: the offline SQL script, an
upgrade from each older revision (online, and with the offline upgrade
script) — the same `pg_dump --schema-only` as `make install-sql`, and the
same SQL-level and end-to-end apply tests pass against each (the pgmq habit:
upgrade, then run the tests).

The apply tests are the existing ones, imported: pytest collects them here
again with this module's `cluster`, whose target is installed along the path
of the test's parameter instead of cloned from the alembic-built template.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy import exec_sql, install_paths, install_via, scratch_db
from helpers import REPO, Cluster
from qsplit import install
from test_install import schema_dump

# the apply tests to run again on every install path (a few, not the suite)
from test_apply_batch import (  # noqa: F401  (collected by pytest with this module's fixtures)
    queues,
    test_bad_routing_value_applies_nothing,
    test_lost_position_raises_qs001,
    test_replayed_batch_is_skipped,
    test_routes_rows_in_ev_id_order_and_moves_position,
)
from test_split import test_usecase_end_to_end  # noqa: F401

# also run on every other supported PostgreSQL major and on mixed pairs (make test-matrix)
pytestmark = pytest.mark.matrix

PATHS = install_paths()


@pytest.fixture(params=PATHS)
def cluster(request, source_pg, tmp_path: Path):
    """A source from the conftest template and a target installed along one
    install path (overrides conftest's `cluster` in this module)."""
    src = source_pg.info
    with scratch_db(f"path_{request.param}") as dst_dsn:
        install_via(request.param, dst_dsn)
        c = Cluster(
            src_dsn=f"host={src.host} port={src.port} user={src.user} dbname={src.dbname}",
            dst_dsn=dst_dsn,
            workdir=tmp_path,
        )
        yield c
        c.close()


@pytest.fixture(scope="module")
def reference_dump() -> str:
    """The schema `make install-sql` (alembic upgrade head) gives."""
    with scratch_db("ref_alembic") as dsn:
        result = subprocess.run(["make", "-s", "install-sql", f"DSN={dsn}"], cwd=REPO, capture_output=True, text=True)
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
        assert exec_sql(dsn, "select version_num from qsplit.alembic_version") == [(install.head_revision(),)]
