"""The installer refuses a server of an unsupported PostgreSQL major with one
line, along every install path, and leaves the database as it was; the
supported range the docs state is the range CI tests.

No server of an unsupported major is at hand (the matrix provisions only
supported ones), so the tests narrow the supported range with the test-only
QSPLIT_TEST_SUPPORTED_MAJORS until it excludes the real server they run on:
the check itself reads that real server's version."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from helpers import REPO, run_sql
from qsplit import install, serverversion

pytestmark = pytest.mark.matrix


def _major(dsn: str) -> int:
    return int(run_sql(dsn, "select current_setting('server_version_num')::int / 10000")[0][0])


def _excluding(major: int) -> str:
    """A narrowed range that leaves out *major*."""
    if major < serverversion.NEWEST:
        return f"{major + 1}-{serverversion.NEWEST}"
    return f"{serverversion.OLDEST}-{major - 1}"


@pytest.fixture
def bare_target(target_pg) -> str:
    """A target database with pgq and no qsplit (the template's clone, with
    the qsplit schema dropped)."""
    info = target_pg.info
    dsn = f"host={info.host} port={info.port} user={info.user} dbname={info.dbname}"
    run_sql(dsn, "drop schema qsplit cascade")
    return dsn


def _qsplit_schema(dsn: str) -> list[tuple]:
    return run_sql(dsn, "select nspname from pg_namespace where nspname = 'qsplit'")


def _output_lines(stderr: str) -> list[str]:
    # make's own "make[1]: *** ... Error" trailer is not qsplit's output
    return [l for l in stderr.splitlines() if l.strip() and not re.match(r"make(\[\d+\])?:", l)]


def test_make_install_sql_refuses_an_unsupported_major_in_one_line(bare_target):
    major = _major(bare_target)
    env = dict(os.environ, **{serverversion.NARROW_ENV: _excluding(major)})
    result = subprocess.run(["make", "-s", "install-sql", f"DSN={bare_target}"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = _output_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert f"runs PostgreSQL {major}" in lines[0] and "qsplit supports PostgreSQL" in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert _qsplit_schema(bare_target) == []  # nothing installed


def test_driver_install_sql_refuses_an_unsupported_major(cluster):
    cluster.dst_exec("drop schema qsplit cascade")
    major = _major(cluster.dst_dsn)
    ini = cluster.write_ini(dst_db=cluster.dst_dsn, logfile=None)
    result = cluster.run_driver("--install-sql", str(ini), env={serverversion.NARROW_ENV: _excluding(major)})
    assert result.returncode == 1, result.stderr
    errors = [l for l in result.stderr.splitlines() if "install-sql failed" in l]
    assert len(errors) == 1 and f"runs PostgreSQL {major}" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert _qsplit_schema(cluster.dst_dsn) == []


def test_offline_script_refuses_an_unsupported_major(bare_target, monkeypatch):
    major = _major(bare_target)
    monkeypatch.setenv(serverversion.NARROW_ENV, _excluding(major))
    script = install.sql_script()
    result = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", bare_target, "-f", "-"],
                            input=script, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"this server runs PostgreSQL {major}" in result.stderr and "qsplit supports" in result.stderr
    assert _qsplit_schema(bare_target) == []  # one transaction: nothing left


def test_the_supported_major_installs(bare_target, monkeypatch):
    """The check lets the server's own major through, at either end of a
    narrowed range (the bounds are inclusive)."""
    major = _major(bare_target)
    monkeypatch.setenv(serverversion.NARROW_ENV, f"{major}-{major}")
    install.upgrade(bare_target)
    assert _qsplit_schema(bare_target) == [("qsplit",)]


@pytest.mark.parametrize("value", ["13-18", "14-19", "abc", "17-15"])
def test_the_test_setting_can_only_narrow_the_range(monkeypatch, value):
    monkeypatch.setenv(serverversion.NARROW_ENV, value)
    with pytest.raises(serverversion.UnsupportedServer):
        serverversion.supported_range()


def test_the_documented_range_is_the_tested_range():
    """README, docs/deployment.md and the matrix script (which CI runs on
    every major it lists but the default server's) name the same majors as
    the installer's check."""
    low, high = serverversion.OLDEST, serverversion.NEWEST
    majors = " ".join(str(m) for m in range(low, high + 1))
    matrix = (REPO / "scripts" / "pg-matrix.sh").read_text()
    assert f'SUPPORTED="{majors}"' in matrix
    assert "test-matrix" in (REPO / ".ci" / "run").read_text()
    stated = f"PostgreSQL {low}–{high}"
    assert stated in (REPO / "README.md").read_text()
    assert stated in (REPO / "docs" / "deployment.md").read_text()
