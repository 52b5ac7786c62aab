"""`pip install .` (no -e) from a clean checkout into a fresh venv gives a
qsplit-driver that stands alone: the package carries the schema (sql/,
migrations/, alembic.ini), `--install-sql` brings a target to head, and a DBA
can deploy with only the offline SQL file and the installed package.

The checkout is the repository's tracked and unignored files (so uncommitted
work is tested too), copied to a temporary directory and deleted once pip is
done.  pip needs the package index (or its cache) for the dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, Cluster, assert_exactly_once, driver_env, produce, run_psql_script, run_sql, schema_dump, scratch_db
from qsplit import install

SCHEMA_PARTS = ("sql", "migrations")


def _clean_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():  # a tracked file deleted in the work tree is not part of it
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _env() -> dict[str, str]:
    """The environment of a DBA's shell: nothing points at the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return driver_env({"PIP_DISABLE_PIP_VERSION_CHECK": "1"}, base=env)


@pytest.fixture(scope="module")
def venv() -> Iterator[Path]:
    # removed when the module is done (pytest would keep its tmp dirs around)
    with tempfile.TemporaryDirectory(prefix="qsplit-package-") as tmp:
        yield _install_into_fresh_venv(Path(tmp))


def _install_into_fresh_venv(root: Path) -> Path:
    checkout = root / "checkout"
    _clean_checkout(checkout)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_env())
    # the fresh venv's own pip, never one found on PATH
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(checkout)],
        capture_output=True, text=True, env=_env(), cwd=root, timeout=900,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    shutil.rmtree(checkout)  # from here on the package has to stand alone
    assert (venv / "bin" / "qsplit-driver").exists(), pip.stdout + pip.stderr
    return venv


def run(venv: Path, program: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run *program* from the venv's bin/ the way a DBA's shell would."""
    return subprocess.run([str(venv / "bin" / program), *args], capture_output=True, text=True, env=_env(),
                          cwd=cwd, timeout=300)


def package_dir(venv: Path, cwd: Path) -> Path:
    out = run(venv, "python", "-c", "import qsplit, os; print(os.path.dirname(qsplit.__file__))",
              cwd=cwd)
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip())


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_installed_package_carries_the_schema(venv, tmp_path):
    pkg = package_dir(venv, tmp_path)
    assert pkg.is_relative_to(venv), f"qsplit imported from {pkg}, not from the fresh venv"
    for part in SCHEMA_PARTS:
        assert _files(pkg / part) == _files(REPO / part), f"qsplit/{part} differs from the source tree's {part}/"
    assert (pkg / "alembic.ini").read_bytes() == (REPO / "alembic.ini").read_bytes()
    where = run(venv, "python", "-c",
                "from qsplit import paths; print(paths.sql_manifest()); print(paths.migrations_dir())", cwd=tmp_path)
    assert where.stdout.split() == [str(pkg / "sql" / "functions.sql"), str(pkg / "migrations")]


def test_metadata_and_console_script(venv, tmp_path):
    version = run(venv, "qsplit-driver", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip().startswith("qsplit-driver ")
    meta = run(venv, "python", "-c",
               "import importlib.metadata as m, json; d = m.metadata('qsplit');"
               "print(json.dumps({k: d.get_all(k) for k in ('Name', 'Version', 'Summary', 'License',"
               " 'Requires-Python', 'Requires-Dist', 'Classifier')}))",
               cwd=tmp_path)
    data = json.loads(meta.stdout)
    assert data["Name"] == ["qsplit"] and data["Summary"] and data["License"] and data["Requires-Python"]
    requires = [r for r in data["Requires-Dist"] if "extra ==" not in r]
    assert {r.split()[0].split(">")[0].split("<")[0].lower() for r in requires} >= {"psycopg2-binary", "alembic", "sqlalchemy"}
    for req in requires:
        assert ">=" in req and "<" in req.replace("<=", ""), f"{req}: give a compatible range (>= tested, < next major)"
    check = run(venv, "pip", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout


def _ini(path: Path, src: str, dst: str, **extra: str) -> Path:
    lines = ["[queue_splitter]", "job_name = pkg_splitter", f"src_db = {src}", f"dst_db = {dst}",
             "pgq_queue_name = singlequeue"] + [f"{k} = {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_install_sql_from_the_package_brings_target_to_head(venv, tmp_path):
    with scratch_db("pkg_ref") as ref, scratch_db("pkg_target") as dsn, scratch_db("pkg_nopgq", pgq=False) as bare:
        install.upgrade(ref)
        ini = _ini(tmp_path / "splitter.ini", dsn, dsn)
        first = run(venv, "qsplit-driver", "--install-sql", str(ini), cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert schema_dump(dsn) == schema_dump(ref)
        assert run_sql(dsn, "select version_num from qsplit.alembic_version") == [(install.head_revision(),)]
        again = run(venv, "qsplit-driver", "--install-sql", str(ini), cwd=tmp_path)
        assert again.returncode == 0 and "Running upgrade" not in again.stderr
        assert schema_dump(dsn) == schema_dump(ref)

        # a target without pgq: one clear error, exit 1, nothing installed
        bad = run(venv, "qsplit-driver", "--install-sql",
                  str(_ini(tmp_path / "bare.ini", bare, bare)), cwd=tmp_path)
        assert bad.returncode == 1 and "no pgq extension" in bad.stderr and "Traceback" not in bad.stderr
        assert run_sql(bare, "select to_regnamespace('qsplit')") == [(None,)]


def test_deploy_with_offline_sql_file_and_package_only(venv, source_pg, tmp_path):
    """The issue's "done when": the target gets qsplit from the offline SQL
    file (written by the installed package), the installed driver splits."""
    script = tmp_path / "sql"
    made = run(venv, "python", "-m", "qsplit.sqlscript", "-o", f"{script}/", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    sql_file = Path(made.stdout.strip())
    assert sql_file.name == f"qsplit-install-{install.head_revision()}.sql"

    src = source_pg.info
    with scratch_db("pkg_deploy") as dst:
        applied = run_psql_script(dst, sql_file.read_text())
        assert applied.returncode == 0, applied.stderr
        c = Cluster(src_dsn=f"host={src.host} port={src.port} user={src.user} dbname={src.dbname}",
                    dst_dsn=dst, workdir=tmp_path)
        try:
            c.src_exec("select pgq.create_queue('singlequeue')")
            for q in ("qa", "qb"):
                c.dst_exec("select pgq.create_queue(%s)", (q,))
            ini = _ini(tmp_path / "splitter.ini", c.src_dsn, dst)
            assert run(venv, "qsplit-driver", "--once", str(ini), cwd=tmp_path).returncode == 0  # registers
            produce(c, ["qa", "qb", "qb"], 500, start=1)  # i % 3 = 0 to qa, the rest to qb
            result = run(venv, "qsplit-driver", "--once", str(ini), cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert c.target_queue_counts() == {"qa": 166, "qb": 334}
            assert_exactly_once(c, ["qa", "qb"])
        finally:
            c.close()
