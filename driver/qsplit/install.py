"""Bring a target database's qsplit schema to a revision with Alembic, online
(connected to the target) or offline (as one SQL script for a DBA to apply).

Works from the source tree and from an installed package alike: the Alembic
scripts and the function layer are found through :mod:`qsplit.paths`.
"""

from __future__ import annotations

import io
import logging

import psycopg2
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from . import db, paths
from .sqlmanifest import ManifestError

log = logging.getLogger("qsplit")


def alembic_config(dsn: str | None = None, output: io.StringIO | None = None) -> AlembicConfig:
    cfg = AlembicConfig(str(paths.alembic_ini()), output_buffer=output)
    cfg.set_main_option("script_location", str(paths.migrations_dir()))
    if dsn is not None:
        cfg.attributes["dsn"] = dsn
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    if len(heads) != 1:
        raise CommandError(f"expected one head revision, found {len(heads)}: {', '.join(heads)}")
    return heads[0]


def sql_script(from_revision: str | None = None) -> str:
    """The offline script (Alembic ``--sql``) that takes a target database from
    *from_revision* (None: no qsplit yet) to head, in one transaction, ending
    with the function layer and the new revision in qsplit.alembic_version."""
    out = io.StringIO()
    target = f"{from_revision}:head" if from_revision else "head"
    command.upgrade(alembic_config(output=out), target, sql=True)
    return out.getvalue()


def install_sql(dsn: str) -> int:
    """`qsplit-driver --install-sql`: bring *dsn*'s qsplit schema to head.
    Returns the process exit status; errors are logged as one line."""
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up chatter
    log.info("bringing the qsplit schema of %s to revision %s", db.describe(dsn), head_revision())
    try:
        upgrade(dsn)
    except (CommandError, ManifestError) as exc:
        log.error("install-sql failed: %s", exc)
        return 1
    except (psycopg2.Error, SQLAlchemyError) as exc:
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        log.error("install-sql failed, nothing changed (one transaction): %s", text)
        return 1
    log.info("qsplit schema is at revision %s", head_revision())
    return 0
