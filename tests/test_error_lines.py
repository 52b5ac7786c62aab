"""The one line the driver logs for a failed batch says what failed: a lost
connection reads the same however psycopg2 surfaced it."""

from __future__ import annotations

from pathlib import Path

import psycopg2

from qsplit.splitter import describe_error
from qsplit.stream import StreamError
from qsplit.config import load


def config(tmp_path: Path):
    ini = tmp_path / "j.ini"
    ini.write_text("[queue_splitter]\nsrc_db = dbname=a\ndst_db = dbname=b\npgq_queue_name = q\n")
    return load(ini)


def test_lost_connection_in_every_shape(tmp_path):
    cfg = config(tmp_path)
    direct = psycopg2.OperationalError("server closed the connection unexpectedly\nmore")
    closed = psycopg2.InterfaceError("connection already closed")
    wrapped = StreamError("reading the batch from the source failed: x")
    wrapped.__cause__ = psycopg2.OperationalError("terminating connection due to administrator command")
    assert describe_error(direct, cfg) == "database connection failed: server closed the connection unexpectedly"
    assert describe_error(closed, cfg) == "database connection failed: connection already closed"
    assert describe_error(wrapped, cfg) == (
        "database connection failed (while streaming the batch): terminating connection due to administrator command"
    )


def test_other_errors_name_queue_and_consumer(tmp_path):
    cfg = config(tmp_path)
    wrapped = StreamError("reading the batch from the source failed: disk full")
    wrapped.__cause__ = OSError("disk full")
    assert describe_error(wrapped, cfg) == "queue 'q', consumer 'j': reading the batch from the source failed: disk full"
