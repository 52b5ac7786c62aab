"""Bring a target database's qsplit schema to a revision with Alembic."""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig

from . import paths


def alembic_config(dsn: str) -> AlembicConfig:
    cfg = AlembicConfig(str(paths.alembic_ini()))
    cfg.set_main_option("script_location", str(paths.migrations_dir()))
    cfg.attributes["dsn"] = dsn
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)
