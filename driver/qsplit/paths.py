"""Where the SQL function layer and the Alembic scripts live."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def project_file(*parts: str) -> Path:
    """Return a file shipped with qsplit: inside the installed package when it
    carries its data (``qsplit/sql``, ``qsplit/migrations``), else in the source
    tree the package was loaded from (``driver/qsplit`` -> repository root)."""
    bundled = _PACKAGE_DIR.joinpath(*parts)
    if bundled.exists():
        return bundled
    return _PACKAGE_DIR.parent.parent.joinpath(*parts)


def sql_manifest() -> Path:
    return project_file("sql", "functions.sql")


def alembic_ini() -> Path:
    return project_file("alembic.ini")


def migrations_dir() -> Path:
    return project_file("migrations")
