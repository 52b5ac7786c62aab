"""Explain a batch the target cannot take because of its bytes.

A source database in SQL_ASCII stores text bytes unchecked.  Our sessions
speak UTF8, so such a source refuses to send bytes that are not valid UTF8
(or, for another client setting, the target refuses them): the COPY of the
batch fails with SQLSTATE 22021 and nothing is applied.  The error alone
names no event; this module reads the batch once more, as raw bytes, and
names the first offending events, their fields and what a DBA can do.
"""

from __future__ import annotations

import logging

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from . import db
from .config import Config
from .stream import StreamError

log = logging.getLogger("qsplit")

INVALID_BYTES = "22021"  # character_not_in_repertoire: invalid byte sequence
FIELDS = ("ev_type", "ev_data", "ev_extra1", "ev_extra2", "ev_extra3", "ev_extra4")
MAX_NAMED = 10


def is_encoding_error(exc: BaseException) -> bool:
    """Is *exc* (or the source error a StreamError wraps) an invalid byte sequence?"""
    if isinstance(exc, StreamError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(exc, psycopg2.Error) and exc.pgcode == INVALID_BYTES


class _BadRows:
    """A COPY TO sink: splits raw COPY text into rows and keeps the ev_id and
    field of rows that are not valid UTF8; memory is one row at a time."""

    def __init__(self) -> None:
        self._rest = b""
        self.bad: list[tuple[int, str]] = []

    def write(self, data: bytes) -> int:
        rows = (self._rest + bytes(data)).split(b"\n")
        self._rest = rows.pop()
        for row in rows:
            self._check(row)
        return len(data)

    def _check(self, row: bytes) -> None:
        if len(self.bad) >= MAX_NAMED:
            return
        ev_id, *fields = row.split(b"\t")
        for name, value in zip(FIELDS, fields):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                self.bad.append((int(ev_id), name))
                return


def find_bad_events(conn: psycopg2.extensions.connection, batch_id: int) -> tuple[list[tuple[int, str]], list[str]]:
    """The batch's events holding bytes that are not UTF8 (ev_id, first bad
    field), at most MAX_NAMED, and the source event tables of the batch."""
    conn.set_client_encoding("SQL_ASCII")  # raw bytes, no conversion, no check
    with conn.cursor() as cur:
        cur.execute("select pgq.batch_event_sql(%s)", (batch_id,))
        (batch_sql,) = cur.fetchone()
        cur.execute("select t from pgq.batch_event_tables(%s) t", (batch_id,))
        tables = [t for (t,) in cur.fetchall()]
        sink = _BadRows()
        # batch_sql is pgq's own query text for this batch (no event data in it)
        cur.copy_expert(
            sql.SQL("copy (select b.ev_id, {} from ({}) b order by b.ev_id) to stdout").format(
                sql.SQL(", ").join(sql.SQL("b.{}").format(sql.Identifier(f)) for f in FIELDS), sql.SQL(batch_sql)
            ),
            sink,
        )
    conn.rollback()
    return sink.bad, tables


def explain(cfg: Config, batch_id: int) -> tuple[str, str]:
    """(message, hint) for a batch that failed with invalid bytes."""
    where = f"consumer {cfg.consumer_name!r} batch {batch_id}"
    try:
        conn = db.connect(cfg.src_db, f"qsplit-driver {cfg.job_name} (encoding check)")
        try:
            bad, tables = find_bad_events(conn, batch_id)
        finally:
            conn.close()
    except psycopg2.Error as exc:
        log.debug("could not look for the offending events: %s", exc)
        bad, tables = [], []
    if not bad:
        message = f"{where}: the batch holds bytes that are not valid UTF8"
    else:
        named = ", ".join(f"ev_id {ev_id} ({field})" for ev_id, field in bad)
        message = f"{where}: source event(s) hold bytes that are not valid UTF8: {named}"
    hint = (
        "Nothing of this batch was applied; it stays open on the source and is retried. "
        "The source database stores bytes unchecked (SQL_ASCII) and the target is UTF8. "
        "Correct those bytes on the source in the queue's event table"
        + (f" ({', '.join(tables)})" if tables else "")
        + ", e.g. update <table> set ev_data = <valid text> where ev_id = <id>;"
        " or remove the event there if it can be lost. Then the batch moves on its next retry."
    )
    return message, hint
