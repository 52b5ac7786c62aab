"""The source side: one PgQ consumer on the source queue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg2.extensions
from psycopg2 import sql


@dataclass(frozen=True)
class Batch:
    batch_id: int
    prev_tick_id: int
    cur_tick_id: int
    cur_tick_time: dt.datetime
    lag: float  # seconds from the batch's cur tick to now, on the source clock
    # pgq.batch_event_sql() of the batch: the query that reads its events
    event_sql: str | None = field(default=None, repr=False, compare=False)


# the event columns the driver moves, in COPY order (pgq's ev_txid and
# ev_retry stay behind: the target assigns its own txid and drops retries)
STAGED_COLUMNS = ("ev_id", "ev_time", "ev_type", "ev_data", "ev_extra1", "ev_extra2", "ev_extra3", "ev_extra4")

# queue_field values whose column the source can sort a batch by; the same
# names qsplit._route_column() accepts (it is the one that rejects others)
_ROUTE_COLUMNS = {f: "ev_" + f for f in ("extra1", "extra2", "extra3", "extra4", "type")}


def route_column(queue_field: str) -> str | None:
    """The event column named by *queue_field*, or None when it is not one
    of the known fields."""
    field_name = queue_field.strip().lower()
    return _ROUTE_COLUMNS.get(field_name.removeprefix("ev_"))


class Source:
    def __init__(self, conn: psycopg2.extensions.connection, queue_name: str, consumer_name: str) -> None:
        self.conn = conn
        self.queue_name = queue_name
        self.consumer_name = consumer_name

    def register(self) -> bool:
        """Register the consumer on the queue; True when it was not registered yet."""
        with self.conn.cursor() as cur:
            cur.execute("select pgq.register_consumer(%s, %s)", (self.queue_name, self.consumer_name))
            (created,) = cur.fetchone()
        self.conn.commit()
        return created == 1

    def next_batch(self) -> Batch | None:
        """Take the next batch (or the one still open for this consumer),
        with the query text that reads its events, in one round trip.

        The transaction stays open when a batch is returned: the batch is
        read, finished and committed in it (finish_batch + commit), so a
        batch costs the source one commit, not three.  A crash before that
        commit undoes next_batch too; the next run gets the same ticks again
        and the target recognises them as applied."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select b.batch_id, b.prev_tick_id, b.cur_tick_id, b.cur_tick_time,"
                "       extract(epoch from now() - b.cur_tick_time)::float8,"
                "       case when b.batch_id is not null then pgq.batch_event_sql(b.batch_id) end"
                "  from pgq.next_batch_custom(%s, %s, NULL, NULL, NULL) b",
                (self.queue_name, self.consumer_name),
            )
            row = cur.fetchone()
        if row is None or row[0] is None:
            self.conn.commit()
            return None
        return Batch(*row)

    def copy_out(self, batch: Batch, sink, queue_field: str = "extra1") -> None:
        """Write the batch's events as COPY text into *sink* (a file-like with
        write()), columns STAGED_COLUMNS, inside the open transaction.

        Rows come grouped by the routing value (sorted by its hash, then
        ev_id), so each target queue's rows sit together in the target's
        staging table and qsplit.apply_batch reads each stretch once.  The order is only for
        speed: apply_batch puts every queue's rows in ev_id order itself."""
        batch_sql = batch.event_sql
        with self.conn.cursor() as cur:
            if batch_sql is None:
                cur.execute("select pgq.batch_event_sql(%s)", (batch.batch_id,))
                (batch_sql,) = cur.fetchone()
            column = route_column(queue_field)
            order = [sql.SQL("b.ev_id")]
            if column is not None:
                # sorting by the hash of the value groups the rows as well as
                # the value itself (colliding values share a stretch, which
                # apply_batch handles) at ~1/3 the sort cost: queue names
                # often share a long prefix, which defeats text sort keys
                order.insert(0, sql.SQL("hashtext(b.{})").format(sql.Identifier(column)))
            # batch_sql is pgq's own query text for this batch (no event data
            # in it); its closing "order by 1" gives way to ours
            query = sql.SQL("copy (select {} from ({}) b order by {}) to stdout").format(
                sql.SQL(", ").join(sql.SQL("b.{}").format(sql.Identifier(c)) for c in STAGED_COLUMNS),
                sql.SQL(batch_sql.removesuffix(" order by 1")),
                sql.SQL(", ").join(order),
            )
            cur.copy_expert(query, sink)

    def finish_batch(self, batch_id: int) -> None:
        """Close the batch; it takes effect at commit(), with next_batch."""
        with self.conn.cursor() as cur:
            cur.execute("select pgq.finish_batch(%s)", (batch_id,))

    def commit(self) -> None:
        self.conn.commit()
