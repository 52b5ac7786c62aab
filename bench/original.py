"""The bench's peer row: the original queue_splitter's algorithm on the real
python-pgq SerialConsumer (PyPI ``pgq`` + ``skytools``, the ``bench``
extra), written for the bench only.

Per batch, as Skytools 3's queue_splitter does it (shared/design/ORIGINAL.md):
SerialConsumer takes the batch on the source (pgq.next_batch_custom, then
the events through a cursor walker), checks the target's last tick, groups
the events by ``queue_field`` in Python, writes each target queue's rows
with pgq.bulk_insert_events (skytools.magic_insert: one COPY per queue),
sets the target's last tick, commits the target, then finishes the batch on
the source.  The target's tick table lives in a bench schema of its own
(not pgq_ext, which qsplit reads when it takes a position over), made by
``prepare_target``.

The consumer is driven through BaseConsumer.work(), the step the original's
daemon loop repeats, so the measured code is python-pgq's own."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg2

try:  # the bench extra; the bench says how to install it when it is missing
    import pgq
    import skytools
except ImportError:  # pragma: no cover - reported by available()
    pgq = None  # type: ignore[assignment]
    skytools = None  # type: ignore[assignment]

# the schema of the peer's target-side tick table (pgq_ext's role)
TICK_SCHEMA = "qsplit_bench_peer"
# the row the original composes per event, in bulk_insert_events' field names
FIELDS = ["type", "data", "extra1", "extra2", "extra3", "extra4", "time"]

_TICK_SQL = f"""
create schema if not exists {TICK_SCHEMA};
create table if not exists {TICK_SCHEMA}.completed_tick (
    consumer_id text primary key,
    last_tick_id bigint);
create or replace function {TICK_SCHEMA}.get_last_tick(i_consumer text) returns bigint
    language sql stable as
    'select last_tick_id from {TICK_SCHEMA}.completed_tick where consumer_id = i_consumer';
create or replace function {TICK_SCHEMA}.set_last_tick(i_consumer text, i_tick bigint) returns integer
    language sql as $$
    insert into {TICK_SCHEMA}.completed_tick (consumer_id, last_tick_id) values (i_consumer, i_tick)
        on conflict (consumer_id) do update set last_tick_id = excluded.last_tick_id;
    select 1 $$;
"""


def available() -> str | None:
    """None when python-pgq is importable, else what to do about it."""
    if pgq is None:
        return "python-pgq is not installed: .venv/bin/pip install -e '.[bench]' (make bench does it)"
    return None


def prepare_target(dst_dsn: str) -> None:
    """Create the peer's tick table and its two functions on the target."""
    conn = psycopg2.connect(dst_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(_TICK_SQL)
        conn.commit()
    finally:
        conn.close()


def _consumer_class():
    class OriginalSplitter(pgq.SerialConsumer):
        """queue_splitter's routing on SerialConsumer: whole batch grouped
        in memory, one COPY per target queue."""

        def __init__(self, args: list[str]) -> None:
            super().__init__("queue_splitter3", "src_db", "dst_db", args)
            self.dst_schema = TICK_SCHEMA

        def process_remote_batch(self, db: Any, batch_id: int, event_list: Any, dst_db: Any) -> None:
            queue_field = self.cf.get("queue_field", "extra1")
            rows_by_queue: dict[str, list[list[Any]]] = {}
            for ev in event_list:
                row = [ev.type, ev.data, ev.extra1, ev.extra2, ev.extra3, ev.extra4, ev.time]
                rows_by_queue.setdefault(getattr(ev, queue_field), []).append(row)
                ev.tag_done()
            curs = dst_db.cursor()
            for queue_name, rows in rows_by_queue.items():
                pgq.bulk_insert_events(curs, rows, FIELDS, queue_name)

    return OriginalSplitter


def write_ini(path: Path, src_dsn: str, dst_dsn: str, queue: str, consumer: str, logfile: Path) -> Path:
    path.write_text(
        "[queue_splitter3]\n"
        f"job_name = {consumer}\n"
        f"src_db = {src_dsn}\n"
        f"dst_db = {dst_dsn}\n"
        f"pgq_queue_name = {queue}\n"
        f"pgq_consumer_id = {consumer}\n"
        f"logfile = {logfile}\n"
        "queue_field = extra1\n"
    )
    return path


class Original:
    """One peer consumer: build it (connections are opened by the first
    work() step), then run() moves every batch available."""

    def __init__(self, ini: Path) -> None:
        reason = available()
        if reason is not None:
            raise RuntimeError(reason)
        # skytools sets its logging up on the root logger (level and
        # handlers: the ini's logfile and stderr); give the root back to the
        # bench and keep only the logfile, on the consumer's own logger
        root = logging.getLogger()
        level, before = root.level, list(root.handlers)
        self.consumer = _consumer_class()([str(ini)])
        added = [h for h in root.handlers if h not in before]
        root.setLevel(level)
        self._handlers = [h for h in added if isinstance(h, logging.FileHandler)]
        for h in added:
            root.removeHandler(h)
            if h not in self._handlers:
                h.close()
        own = self.consumer.log
        own.propagate = False
        own.setLevel(logging.INFO)
        for h in self._handlers:
            own.addHandler(h)

    def connect(self) -> None:
        """Open both connections before the clock starts, as a running
        daemon has them."""
        self.consumer.get_database("src_db").rollback()
        self.consumer.get_database("dst_db").rollback()

    def run(self) -> int:
        """work() until no batch is left; returns the batches moved."""
        batches = 0
        while self.consumer.work():
            batches += 1
        return batches

    def close(self) -> None:
        self.consumer.close_database("src_db")
        self.consumer.close_database("dst_db")
        for h in self._handlers:
            self.consumer.log.removeHandler(h)
            h.close()
