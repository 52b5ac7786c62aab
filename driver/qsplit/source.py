"""The source side: one PgQ consumer on the source queue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg2.extensions
from psycopg2 import sql


@dataclass(frozen=True)
class Batch:
    batch_id: int
    prev_tick_id: int
    cur_tick_id: int
    prev_tick_time: dt.datetime
    cur_tick_time: dt.datetime
    lag: float  # seconds from the batch's cur tick to now, on the source clock


class Source:
    def __init__(self, conn: psycopg2.extensions.connection, queue_name: str, consumer_name: str,
                 batch_options: dict[str, object] | None = None) -> None:
        self.conn = conn
        self.queue_name = queue_name
        self.consumer_name = consumer_name
        # pgq.next_batch_custom's min_lag, min_count, min_interval (the ini's
        # pgq_keep_lag, pgq_batch_collect_events, pgq_batch_collect_interval)
        opts = batch_options or {}
        self._custom = (opts.get("min_lag"), opts.get("min_count"), opts.get("min_interval"))

    def register(self) -> bool:
        """Register the consumer on the queue; True when it was not registered yet."""
        with self.conn.cursor() as cur:
            cur.execute("select pgq.register_consumer(%s, %s)", (self.queue_name, self.consumer_name))
            (created,) = cur.fetchone()
        self.conn.commit()
        return created == 1

    def next_batch(self) -> Batch | None:
        """Take the next batch (or the one still open for this consumer)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select b.batch_id, b.prev_tick_id, b.cur_tick_id, b.prev_tick_time, b.cur_tick_time,"
                "       extract(epoch from now() - b.cur_tick_time)::float8"
                "  from pgq.next_batch_custom(%s, %s, %s::interval, %s::int4, %s::interval) b",
                (self.queue_name, self.consumer_name, *self._custom),
            )
            row = cur.fetchone()
        self.conn.commit()
        if row is None or row[0] is None:
            return None
        return Batch(*row)

    def copy_out(self, batch_id: int, sink) -> None:
        """Write the batch's events as COPY text into *sink* (a file-like with
        write()), in ev_id order, columns as pgq.batch_event_sql() gives them."""
        with self.conn.cursor() as cur:
            cur.execute("select pgq.batch_event_sql(%s)", (batch_id,))
            (batch_sql,) = cur.fetchone()
            # batch_sql is pgq's own query text for this batch (no event data in it)
            cur.copy_expert(sql.SQL("copy ({}) to stdout").format(sql.SQL(batch_sql)), sink)
        self.conn.commit()

    def is_open(self, batch_id: int) -> bool:
        """Whether *batch_id* is still this consumer's open batch (another
        driver on the same consumer may have finished it meanwhile)."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select current_batch from pgq.get_consumer_info(%s, %s)", (self.queue_name, self.consumer_name)
            )
            row = cur.fetchone()
        self.conn.commit()
        return row is not None and row[0] == batch_id

    def finish_batch(self, batch_id: int) -> bool:
        """Close the batch; it takes effect at commit().  False when the batch
        was not open any more (another driver on this consumer finished it)."""
        with self.conn.cursor() as cur:
            cur.execute("select pgq.finish_batch(%s)", (batch_id,))
            (found,) = cur.fetchone()
        return found == 1

    def commit(self) -> None:
        self.conn.commit()
