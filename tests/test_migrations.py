"""Schema upgrade safety: the revision chain is well formed, upgrading twice
changes nothing, head -> base -> head works, and the offline SQL script (one
transaction) refuses a database it was not made for and leaves it as it was.
Generic over any number of revisions."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from helpers import (REPO, apply_offline_script, offline_script, run_psql_script, run_sql, schema_dump, scratch_db,
                     upgrade_starts)
from qsplit import install

# also run on every other supported PostgreSQL major (make test-matrix)
pytestmark = pytest.mark.matrix

VERSIONS = REPO / "migrations" / "versions"
# 0001_consumer_position.py: four digits (the revision id), an underscore, a lower-case slug
FILE_NAME = re.compile(r"^(?P<rev>\d{4})_(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)\.py$")


def qsplit_objects(dsn: str) -> list[tuple]:
    """Everything in schema qsplit but the alembic version table."""
    return run_sql(
        dsn,
        "select 'relation', c.relname from pg_class c where c.relnamespace = 'qsplit'::regnamespace"
        "   and c.relname not like 'alembic_version%'"
        " union all select 'function', p.proname from pg_proc p where p.pronamespace = 'qsplit'::regnamespace"
        " union all select 'type', t.typname from pg_type t where t.typnamespace = 'qsplit'::regnamespace"
        "   and t.typname not like '%alembic_version%'"
        " order by 1, 2",
    )


def version(dsn: str) -> list[tuple]:
    return run_sql(dsn, "select version_num from qsplit.alembic_version")


# -- the revision chain --------------------------------------------------------

def _module_assignments(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: dict[str, object] = {"__doc__": ast.get_docstring(tree)}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
        elif isinstance(node, ast.FunctionDef):
            out[node.name] = node
    return out


def test_revisions_are_named_and_chained_one_way():
    files = sorted(p for p in VERSIONS.iterdir() if p.suffix == ".py")
    assert files, "no revisions"
    previous = None
    for number, path in enumerate(files, start=1):
        m = FILE_NAME.match(path.name)
        assert m, f"{path.name}: revision files are named NNNN_slug.py (lower case, digits, underscores)"
        mod = _module_assignments(path)
        rev = m.group("rev")
        assert rev == f"{number:04d}", f"{path.name}: revisions are numbered 0001, 0002, ... without gaps"
        assert mod.get("revision") == rev, f"{path.name}: revision id must be {rev!r}, as in the file name"
        assert mod.get("down_revision") == previous, f"{path.name}: down_revision must be {previous!r}"
        assert mod.get("branch_labels") is None and mod.get("depends_on") is None, path.name
        doc = mod["__doc__"] or ""
        assert f"Revision ID: {rev}" in doc and f"Revises: {previous or ''}".rstrip() in doc, (
            f"{path.name}: the docstring's Revision ID / Revises lines must match the code"
        )
        assert isinstance(mod.get("upgrade"), ast.FunctionDef), f"{path.name}: no upgrade()"
        assert isinstance(mod.get("downgrade"), ast.FunctionDef), f"{path.name}: no downgrade()"
        previous = rev
    # alembic reads the same chain: one head, every revision reachable from it
    script = ScriptDirectory.from_config(install.alembic_config())
    assert script.get_heads() == [previous]
    assert install.revisions() == [f"{n:04d}" for n in range(1, len(files) + 1)]


def test_revisions_never_read_the_function_layer():
    """Revisions hold the non-idempotent changes only: replaying today's
    function bodies against yesterday's tables is the classic trap."""
    for path in VERSIONS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for word in ("sqlmanifest", "functions.sql", "paths.sql_manifest"):
            assert word not in text, f"{path.name} reads the function layer ({word})"


# -- online: alembic ---------------------------------------------------------------

def test_upgrade_head_twice_changes_nothing():
    with scratch_db("mig_twice") as dsn:
        install.upgrade(dsn)
        first = schema_dump(dsn)
        install.upgrade(dsn)
        assert schema_dump(dsn) == first
        assert version(dsn) == [(install.head_revision(),)]


def test_downgrade_base_then_upgrade_head():
    with scratch_db("mig_base") as dsn:
        install.upgrade(dsn)
        run_sql(dsn, "insert into qsplit.consumer (consumer_name, last_tick_id) values ('c1', 7)")
        at_head = schema_dump(dsn)
        install.downgrade(dsn, "base")
        assert qsplit_objects(dsn) == [], "downgrade base leaves no qsplit table, function or type"
        assert version(dsn) == []
        install.upgrade(dsn)
        assert schema_dump(dsn) == at_head
        assert version(dsn) == [(install.head_revision(),)]
        # the offline install script also takes a database downgraded to base
        install.downgrade(dsn, "base")
        apply_offline_script(dsn)
        assert schema_dump(dsn) == at_head


@pytest.mark.parametrize("start", upgrade_starts())
def test_data_survives_upgrade_from_older_revision(start):
    """A position written at an old revision is still there at head (the
    consumer table exists since 0001)."""
    with scratch_db(f"mig_data_{start}") as dsn:
        install.upgrade(dsn, start)
        run_sql(dsn, "insert into qsplit.consumer (consumer_name, last_tick_id, last_batch_id) values ('c1', 42, 7)")
        install.upgrade(dsn)
        assert run_sql(dsn, "select consumer_name, last_tick_id, last_batch_id from qsplit.consumer") == [
            ("c1", 42, 7)
        ]


# -- offline: the SQL script ------------------------------------------------------

def test_sql_script_is_one_transaction_ending_with_the_function_layer():
    text = offline_script()
    statements = [line for line in text.splitlines() if line in ("BEGIN;", "COMMIT;")]
    assert statements == ["BEGIN;", "COMMIT;"]
    assert text.lstrip().startswith("BEGIN;") and text.rstrip().endswith("COMMIT;")
    head = install.head_revision()
    # the last revision step records head (INSERT for the first revision, UPDATE after)
    assert re.search(rf"qsplit\.alembic_version (\(version_num\) VALUES \('{head}'\)|SET version_num='{head}')", text)
    assert "create or replace function qsplit.apply_batch(" in text
    assert "%%" not in text  # bodies reach the file as written, not escaped


def test_sql_script_refuses_a_database_without_pgq():
    with scratch_db("off_nopgq", pgq=False) as dsn:
        result = run_psql_script(dsn, offline_script())
        assert result.returncode != 0
        assert "no pgq extension" in result.stderr and "CREATE EXTENSION pgq" in result.stderr
        assert run_sql(dsn, "select to_regnamespace('qsplit')") == [(None,)]


def test_install_script_refuses_an_installed_database_and_changes_nothing():
    with scratch_db("off_twice") as dsn:
        apply_offline_script(dsn)
        run_sql(dsn, "insert into qsplit.consumer (consumer_name, last_tick_id) values ('c1', 7)")
        before = schema_dump(dsn)
        result = run_psql_script(dsn, offline_script())
        assert result.returncode != 0
        head = install.head_revision()
        assert f"the database is at {head}" in result.stderr and "FROM=" in result.stderr
        assert schema_dump(dsn) == before
        assert run_sql(dsn, "select consumer_name, last_tick_id from qsplit.consumer") == [("c1", 7)]


@pytest.mark.parametrize("start", upgrade_starts())
def test_upgrade_script_refuses_a_database_at_another_revision(start):
    with scratch_db(f"off_wrong_{start}") as dsn:
        # not installed at all
        result = run_psql_script(dsn, offline_script(start))
        assert result.returncode != 0
        assert f"starts at schema revision {start}, but the database is at none" in result.stderr
        assert run_sql(dsn, "select to_regclass('qsplit.consumer')") == [(None,)]


def test_failing_script_leaves_nothing_behind():
    """One transaction: a statement that fails half way (here the consumer
    table already exists, made by hand) rolls back everything before it."""
    with scratch_db("off_fail") as dsn:
        run_sql(dsn, "create schema qsplit; create table qsplit.consumer (x int)")
        result = run_psql_script(dsn, offline_script())
        assert result.returncode != 0 and 'relation "consumer" already exists' in result.stderr
        assert run_sql(dsn, "select to_regclass('qsplit.alembic_version')") == [(None,)]
        assert run_sql(dsn, "select count(*) from pg_proc where pronamespace = 'qsplit'::regnamespace") == [(0,)]


def test_make_sql_script_writes_the_scripts(tmp_path):
    head = install.head_revision()
    start = upgrade_starts()[0]
    for args, name, expected in (
        ([], f"qsplit-install-{head}.sql", offline_script()),
        ([f"FROM={start}"], f"qsplit-upgrade-{start}-to-{head}.sql", offline_script(start)),
    ):
        result = subprocess.run(
            ["make", "-s", "sql-script", f"OUT={tmp_path}/", *args], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        out = tmp_path / name
        assert result.stdout.strip() == str(out)
        assert out.read_text() == expected
    bad = subprocess.run(["make", "-s", "sql-script", "FROM=nope", f"OUT={tmp_path}/"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0 and "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_one_step_down_leaves_no_apply_batch_calling_dropped_helpers():
    """0003's apply_batch calls the routing helpers 0003 adds: stepping down
    from 0003 drops it with them (a database below head gets the function
    layer of its own release), then head brings everything back."""
    with scratch_db("mig_step") as dsn:
        install.upgrade(dsn)
        at_head = schema_dump(dsn)
        install.downgrade(dsn, "0002")
        left = run_sql(dsn, "select p.oid::regprocedure::text from pg_proc p"
                             " where p.pronamespace = 'qsplit'::regnamespace and p.proname in"
                             " ('apply_batch', '_route_plan', '_check_policies', '_check_staging',"
                             "  '_claim_position', '_insert_dead_letters')")
        assert left == []
        install.upgrade(dsn)
        assert schema_dump(dsn) == at_head
