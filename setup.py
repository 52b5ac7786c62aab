"""Build step: bundle the schema with the driver.

The wheel's ``qsplit`` package carries copies of the top-level ``sql/``,
``migrations/`` and ``alembic.ini`` (as ``qsplit/sql``, ``qsplit/migrations``,
``qsplit/alembic.ini``), so an installed ``qsplit-driver --install-sql`` finds
them without the source tree (see driver/qsplit/paths.py).  Metadata and
dependencies live in setup.cfg.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SCHEMA_DIRS = ("sql", "migrations")
SCHEMA_FILES = ("alembic.ini",)


class build_py_with_schema(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the source tree
        package = Path(self.build_lib) / "qsplit"
        for name in SCHEMA_DIRS:
            shutil.copytree(
                ROOT / name,
                package / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                dirs_exist_ok=True,
            )
        for name in SCHEMA_FILES:
            shutil.copy2(ROOT / name, package / name)


setup(cmdclass={"build_py": build_py_with_schema})
