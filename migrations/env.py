"""Alembic environment for the qsplit target schema.

Revisions own the tables (non-idempotent changes).  When an upgrade reaches
head, the function layer (sql/functions.sql and the files it includes) is
re-applied in the same transaction through the raw DBAPI cursor, so a
database at head always has today's function bodies.

The target is given as a libpq connection string:
    alembic -x dsn='dbname=batchdb' upgrade head
(or the QSPLIT_DSN environment variable; Python callers put it in
Config.attributes["dsn"]).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import psycopg2
from alembic import context
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from qsplit import sqlmanifest

SCHEMA = "qsplit"
VERSION_TABLE = "alembic_version"
# one lock id for every qsplit schema change on a database: two installs at
# once queue up instead of racing
ADVISORY_LOCK_ID = 0x7173706C  # 'qspl'

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _dsn() -> str:
    dsn = (
        config.attributes.get("dsn")
        or context.get_x_argument(as_dictionary=True).get("dsn")
        or os.environ.get("QSPLIT_DSN")
    )
    if not dsn:
        raise CommandError("no target database: give -x dsn='<libpq conninfo>' (or set QSPLIT_DSN)")
    return dsn


def _script_heads() -> set[str]:
    return set(ScriptDirectory.from_config(config).get_heads())


def _offline_target_is_head() -> bool:
    """Offline (--sql): does the requested range end at the newest revision?"""
    target = context.get_revision_argument()
    targets = set(target) if isinstance(target, (tuple, list)) else {target}
    return bool(targets) and (targets <= {"head", "heads"} or targets <= _script_heads())


def _check_pgq(cursor) -> None:
    cursor.execute("select extversion from pg_catalog.pg_extension where extname = 'pgq'")
    if cursor.fetchone() is None:
        raise CommandError(
            "the target database has no pgq extension: install the package "
            "(Debian: apt-get install postgresql-15-pgq3) and run CREATE EXTENSION pgq; "
            "in that database, then run this again"
        )


def run_migrations_offline() -> None:
    """Write the SQL instead of running it (alembic upgrade --sql)."""
    context.configure(
        dialect_name="postgresql",
        literal_binds=True,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.execute(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK_ID})")
        context.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        context.run_migrations()
        if _offline_target_is_head():
            context.execute(sqlmanifest.expand())


def run_migrations_online() -> None:
    dsn = _dsn()

    def connect():
        try:
            return psycopg2.connect(dsn)
        except psycopg2.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CommandError(f"cannot connect to the target database: {first}") from None

    engine = create_engine("postgresql+psycopg2://", creator=connect, poolclass=NullPool)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            _check_pgq(cursor)
        context.configure(
            connection=connection,
            version_table=VERSION_TABLE,
            version_table_schema=SCHEMA,
            transactional_ddl=True,
        )
        with context.begin_transaction():
            with raw.cursor() as cursor:
                cursor.execute("select pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
                cursor.execute(f"create schema if not exists {SCHEMA}")
            context.run_migrations()
            if set(context.get_context().get_current_heads()) == _script_heads():
                with raw.cursor() as cursor:
                    cursor.execute(sqlmanifest.expand())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
