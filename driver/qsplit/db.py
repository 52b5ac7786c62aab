"""Open the driver's database connections the same way on both sides."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

# Both sessions print and parse COPY text the same way: ISO dates carry their
# UTC offset, UTF8 on the wire.  (A source whose server encoding is SQL_ASCII
# hands its bytes through unchecked; the target then validates them.)
_SESSION_SETUP = "set datestyle = 'ISO, YMD'; set intervalstyle = 'postgres'; set timezone = 'UTC'"


def connect(dsn: str, application_name: str) -> psycopg2.extensions.connection:
    """Connect with libpq conninfo *dsn*; the session is set up for COPY text
    exchange.  The connection is not in autocommit: every transaction boundary
    is an explicit commit() by the caller."""
    conn = psycopg2.connect(dsn, application_name=application_name[:63])
    conn.set_client_encoding("UTF8")
    with conn.cursor() as cur:
        cur.execute(_SESSION_SETUP)
    conn.commit()
    return conn


def describe(dsn: str) -> str:
    """A DSN for logs: every parameter but the password."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<unparsable connection string>"
    params.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in params.items()) or "<defaults>"


def is_connection_lost(conn: psycopg2.extensions.connection | None) -> bool:
    return conn is None or conn.closed != 0
