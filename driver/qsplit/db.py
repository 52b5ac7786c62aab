"""Open the driver's database connections the same way on both sides."""

from __future__ import annotations

import logging
import re

import psycopg2
import psycopg2.extensions
import psycopg2.extras

# Both sessions print and parse COPY text the same way: ISO dates carry their
# UTC offset, UTF8 on the wire.  (A source whose server encoding is SQL_ASCII
# hands its bytes through unchecked; the target then validates them.)
# The search_path is pinned: with public (or any schema another role can
# create in) on the path, a look-alike such as public.hashtextextended(text,
# integer) matches the driver's arguments better than pg_catalog's function
# and runs as the driver's role (CVE-2018-1058); pgq's SECURITY DEFINER
# functions, which pin no search_path, resolve names through it too.  pg_temp
# last: it is never searched for functions or operators.  A SET rather than a
# libpq `options` parameter, which connection poolers refuse.
SEARCH_PATH = "pg_catalog, pg_temp"
_SESSION_SETUP = (f"set search_path = {SEARCH_PATH}; set datestyle = 'ISO, YMD'; set intervalstyle = 'postgres';"
                  " set timezone = 'UTC'")


def connect(dsn: str, application_name: str, *, defaults: dict[str, str] | None = None,
            log_statements: bool = False) -> psycopg2.extensions.connection:
    """Connect with libpq conninfo *dsn*; the session is set up for COPY text
    exchange.  *defaults* (connect_timeout, keepalives, ...) apply to what the
    DSN does not set itself.  The connection is not in autocommit: every
    transaction boundary is an explicit commit() by the caller.  With
    *log_statements* every statement is logged at DEBUG (-vv)."""
    extra = with_defaults(dsn, {"application_name": application_name[:63], **(defaults or {})})
    kwargs: dict = dict(extra)
    logging.getLogger("qsplit").debug("connecting: %s %s", describe(dsn),
                                      " ".join(f"{k}={v}" for k, v in extra.items()))
    if log_statements:
        kwargs["connection_factory"] = _StatementLog
    conn = psycopg2.connect(dsn, **kwargs)
    if log_statements:
        conn.initialize(logging.getLogger("qsplit.sql"))
    conn.set_client_encoding("UTF8")
    with conn.cursor() as cur:
        cur.execute(_SESSION_SETUP)
    conn.commit()
    return conn


class _StatementLog(psycopg2.extras.LoggingConnection):
    """-vv: every statement to the log, as text."""

    def filter(self, msg, curs):  # noqa: A003 - psycopg2's hook name
        return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg


def with_defaults(dsn: str, defaults: dict[str, str]) -> dict[str, str]:
    """The entries of *defaults* that *dsn* does not set (keepalives_* count
    as set when the DSN sets any keepalives parameter)."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        params = {}
    sets_keepalives = any(k.startswith("keepalives") for k in params)
    return {
        k: v
        for k, v in defaults.items()
        if k not in params and not (sets_keepalives and k.startswith("keepalives"))
    }


def connection_defaults(connect_timeout: int, keepalive_idle: int, keepalive_interval: int,
                        keepalive_count: int) -> dict[str, str]:
    """libpq parameters the driver adds to both DSNs: a bounded connect and
    TCP keepalives, so a silently dead network is noticed."""
    out = {"connect_timeout": str(connect_timeout)}
    if keepalive_idle > 0:
        out.update(keepalives="1", keepalives_idle=str(keepalive_idle),
                   keepalives_interval=str(keepalive_interval), keepalives_count=str(keepalive_count))
    else:
        out["keepalives"] = "0"
    return out


# what a log line may say of a connection string: where it connects, as
# whom, how patiently; nothing else (passwords, key and pass files, options)
_DESCRIBED = ("host", "hostaddr", "port", "dbname", "user", "service", "sslmode", "connect_timeout",
              "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count")


def describe(dsn: str) -> str:
    """A DSN for logs: where it connects, as whom and how patiently;
    nothing else."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<unparsable connection string>"
    return " ".join(f"{k}={params[k]}" for k in _DESCRIBED if k in params) or "<defaults>"


def is_connection_lost(conn: psycopg2.extensions.connection | None) -> bool:
    return conn is None or conn.closed != 0


_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)|(://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)


def redact(text: str) -> str:
    """*text* with every password of a conninfo (password=...) or URI
    (user:secret@host) replaced by ***."""
    def repl(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return m.group(1) + "***"
        return m.group(3) + "***" + m.group(5)

    return _PASSWORD.sub(repl, text)
