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

from qsplit import serverversion, sqlmanifest

SCHEMA = "qsplit"
VERSION_TABLE = "alembic_version"
# one lock id for every qsplit schema change on a database: two installs at
# once queue up instead of racing
ADVISORY_LOCK_ID = 0x7173706C  # 'qspl'
# The installer runs as a superuser: no name it uses may resolve to an object
# someone else created.  With public on the path, a look-alike such as
# public.pg_advisory_xact_lock(integer) or an operator public.=(varchar, text)
# matches the argument types better than pg_catalog's and wins
# (CVE-2018-1058).  Views bind their functions at creation, so this also
# decides what the views call.  pg_temp last: never searched for functions.
SEARCH_PATH = "pg_catalog, pg_temp"

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


def _offline_start_revision() -> str | None:
    """Offline (--sql): the full id of the revision the script starts from
    (``alembic upgrade FROM:head --sql``), None when it starts from nothing."""
    start = context.get_starting_revision_argument()
    if isinstance(start, (tuple, list)):
        start = start[0] if len(start) == 1 else None
    if start in (None, "base"):
        return None
    found = ScriptDirectory.from_config(config).get_revision(start)
    if found is None:
        raise CommandError(f"no revision {start!r} under {config.get_main_option('script_location')}")
    return found.revision


_OFFLINE_CHECK_PGQ = """\
do $qsplit_check$
begin
    if not exists (select 1 from pg_catalog.pg_extension where extname = 'pgq') then
        raise exception 'qsplit: this database has no pgq extension'
            using errcode = 'object_not_in_prerequisite_state',
                  hint = 'Install the pgq package for this PostgreSQL version, run CREATE EXTENSION pgq; in this database, then run this script again.';
    end if;
end;
$qsplit_check$;"""

_OFFLINE_CHECK_REVISION = """\
do $qsplit_check$
declare
    v_expected text := {expected};
    v_found    text;
begin
    if pg_catalog.to_regclass('{schema}.{table}') is not null then
        execute 'select string_agg(version_num, '', '') from {schema}.{table}' into v_found;
        if v_found is null and v_expected is null then
            -- left empty by a downgrade to base: the script creates it again
            execute 'drop table {schema}.{table}';
        end if;
    end if;
    if v_found is distinct from v_expected then
        raise exception 'qsplit: this script starts at schema revision %, but the database is at %',
                coalesce(v_expected, 'none (empty database)'), coalesce(v_found, 'none (not installed)')
            using errcode = 'object_not_in_prerequisite_state',
                  hint = 'Use the script made for the revision the database is at: make sql-script FROM=<revision> (FROM omitted: a database without qsplit).';
    end if;
end;
$qsplit_check$;"""


def _check_server_version(cursor) -> None:
    cursor.execute("select pg_catalog.current_setting('server_version_num')::int,"
                   " pg_catalog.current_setting('server_version')")
    try:
        serverversion.check(*cursor.fetchone())
    except serverversion.UnsupportedServer as exc:
        raise CommandError(str(exc)) from None


def _check_pgq(cursor) -> None:
    cursor.execute("select extversion from pg_catalog.pg_extension where extname = 'pgq'")
    if cursor.fetchone() is None:
        cursor.execute("select pg_catalog.current_setting('server_version_num')::int / 10000")
        major = cursor.fetchone()[0]
        raise CommandError(
            "the target database has no pgq extension: install the package "
            f"(Debian: apt-get install postgresql-{major}-pgq3) and run CREATE EXTENSION pgq; "
            "in that database, then run this again"
        )


def run_migrations_offline() -> None:
    """Write the SQL instead of running it (alembic upgrade [FROM:]head --sql):
    one transaction that checks pgq and the starting revision, runs the
    revisions, records the new revision in qsplit.alembic_version and, when it
    ends at head, creates the function layer."""
    context.configure(
        dialect_name="postgresql",
        # named binds: op.execute() text keeps a literal % as it is
        dialect_opts={"paramstyle": "named"},
        literal_binds=True,
        version_table=VERSION_TABLE,
        version_table_schema=SCHEMA,
        transactional_ddl=True,
    )
    start = _offline_start_revision()
    # written verbatim: the function bodies must reach the file unmangled
    # (no bind-parameter or %% processing), as the online path runs them
    write = context.get_context().impl.static_output
    with context.begin_transaction():
        # psql's session has the DBA's search_path: pin it for the transaction
        write(f"SET LOCAL search_path = {SEARCH_PATH};\n")
        context.execute(f"SELECT pg_catalog.pg_advisory_xact_lock({ADVISORY_LOCK_ID})")
        try:
            write(serverversion.offline_check_sql())
        except serverversion.UnsupportedServer as exc:
            raise CommandError(str(exc)) from None
        write(_OFFLINE_CHECK_PGQ)
        expected = "null" if start is None else "'" + start.replace("'", "''") + "'"
        write(_OFFLINE_CHECK_REVISION.format(expected=expected, schema=SCHEMA, table=VERSION_TABLE))
        context.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        context.run_migrations()
        if _offline_target_is_head():
            write(sqlmanifest.expand().rstrip("\n"))


def run_migrations_online() -> None:
    dsn = _dsn()

    def connect():
        try:
            conn = psycopg2.connect(dsn)
        except psycopg2.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise CommandError(f"cannot connect to the target database: {first}") from None
        # before anything runs on it, SQLAlchemy's own first queries included
        with conn.cursor() as cursor:
            cursor.execute(f"set search_path = {SEARCH_PATH}")
        conn.commit()
        return conn

    engine = create_engine("postgresql+psycopg2://", creator=connect, poolclass=NullPool)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        with raw.cursor() as cursor:
            _check_server_version(cursor)
            _check_pgq(cursor)
        context.configure(
            connection=connection,
            version_table=VERSION_TABLE,
            version_table_schema=SCHEMA,
            transactional_ddl=True,
        )
        with context.begin_transaction():
            with raw.cursor() as cursor:
                cursor.execute("select pg_catalog.pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
                cursor.execute(f"create schema if not exists {SCHEMA}")
            context.run_migrations()
            if set(context.get_context().get_current_heads()) == _script_heads():
                with raw.cursor() as cursor:
                    cursor.execute(sqlmanifest.expand())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
