"""The source side: one PgQ consumer on the source queue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from .config import QUEUE_FIELDS


@dataclass(frozen=True)
class Batch:
    batch_id: int
    prev_tick_id: int
    cur_tick_id: int
    prev_tick_time: dt.datetime
    cur_tick_time: dt.datetime
    lag: float  # seconds from the batch's cur tick to now, on the source clock
    # pgq.batch_event_sql() of the batch: the query that reads its events
    event_sql: str | None = field(default=None, repr=False, compare=False)


# the event columns the driver moves, in COPY order: every field of the
# source event (ev_txid and ev_retry are not inserted into target queues,
# but a dead letter keeps the whole event)
STAGED_COLUMNS = (
    "ev_id", "ev_time", "ev_txid", "ev_retry", "ev_type", "ev_data",
    "ev_extra1", "ev_extra2", "ev_extra3", "ev_extra4",
)
# their types in the target's staging table (qsplit.prepare_staging): the
# source's columns are cast to them, so that a binary COPY out of any pgq
# event table reads back into staging (a cast to the column's own type
# costs nothing)
STAGED_TYPES = ("int8", "timestamptz", "int8", "int4", "text", "text", "text", "text", "text", "text")

# a transaction-level advisory lock per source queue and consumer, taken by
# Source.next_batch until the caller commits; needs no privilege.  pgq.next_batch_custom
# reads the open batch without a lock: a second driver reading it while the
# first one's next_batch is uncommitted would open a batch of its own, which
# with pgq_batch_collect_* or pgq_keep_lag can cover other ticks and leave one
# of them stuck on QS001.  Waiting here, it gets the same batch.
NEXT_BATCH_LOCK = ("select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended("
                   "'qsplit.next_batch ' || %s || ' ' || %s, 0))")

# how the message of what pgq raises for a batch that is no longer open
# starts (str.startswith takes the tuple): pgq.batch_event_sql finds no
# subscription with the batch, pgq.batch_event_tables no ticks for it
BATCH_GONE = ("batch not found", "Cannot find data for batch")

# queue_field values whose column the source can group a batch by: the names
# the config accepts (config.QUEUE_FIELDS, the one list for Python), which are
# the ones qsplit._route_column() accepts (it is the one that rejects others)
_ROUTE_COLUMNS = {f: "ev_" + f for f in QUEUE_FIELDS}


def route_column(queue_field: str) -> str | None:
    """The event column named by *queue_field*, or None when it is not one
    of the known fields."""
    return _ROUTE_COLUMNS.get(queue_field.strip().lower().removeprefix("ev_"))


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
        """Register the consumer on the queue (takes effect at commit()); True
        when it was not registered yet."""
        with self.conn.cursor() as cur:
            cur.execute("select pgq.register_consumer(%s, %s)", (self.queue_name, self.consumer_name))
            (created,) = cur.fetchone()
        return created == 1

    def next_batch(self) -> Batch | None:
        """Take the next batch (or the one still open for this consumer), with
        the query text that reads its events, in one round trip.  The caller
        commits at once (the advisory lock is held until then).

        That commit matters: once taken, a batch keeps its ticks until
        finish_batch, so a crash anywhere later hands the driver the very
        same batch again, which the target recognises as applied.  (Left
        uncommitted, a re-taken batch could cover other ticks when
        pgq_batch_collect_* or pgq_keep_lag are set, and the target's
        position would match neither end of it: QS001.)"""
        query = (
            "select b.batch_id, b.prev_tick_id, b.cur_tick_id, b.prev_tick_time, b.cur_tick_time,"
            "       extract(epoch from now() - b.cur_tick_time)::float8, {event_sql}"
            "  from pgq.next_batch_custom(%s, %s, %s::interval, %s::int4, %s::interval) b"
        )
        args = (self.queue_name, self.consumer_name, *self._custom)
        # the lock is a statement of its own, before the query: the query's
        # snapshot is taken once the lock is held (one round trip for both)
        query = NEXT_BATCH_LOCK + "; " + query
        args = (self.queue_name, self.consumer_name) + args
        with self.conn.cursor() as cur:
            try:
                cur.execute(
                    query.format(event_sql="case when b.batch_id is not null then pgq.batch_event_sql(b.batch_id) end"),
                    args,
                )
            except psycopg2.errors.RaiseException as exc:
                if not (exc.diag.message_primary or "").startswith(BATCH_GONE):
                    raise
                # another driver on this consumer finished the batch that
                # next_batch_custom had just returned: take the batch alone;
                # copy_out() asks for its query later, and the loop sees a
                # batch finished elsewhere
                self.conn.rollback()
                cur.execute(query.format(event_sql="null::text"), args)
            row = cur.fetchone()
        if row is None or row[0] is None:
            return None
        return Batch(*row)

    def copy_out(self, batch: Batch, sink, queue_field: str = "extra1",
                 table_filter: Sequence[str] | None = None, binary: bool = False) -> None:
        """Write the batch's events as COPY data into *sink* (a file-like with
        write()), columns STAGED_COLUMNS of types STAGED_TYPES, in COPY's
        binary format when *binary* (see stream.copy_binary), else text.
        The transaction stays open; the same one finishes the batch
        (finish_batch, then commit()).

        With *table_filter* (the ini's table_filter, schema-qualified names),
        only events whose ev_extra1 is one of the names are written; the
        others are left out, and finishing the batch consumes them, as
        python-pgq's consumer_filter does for the original.

        Rows come grouped by the routing value (sorted by its hash, then
        ev_id), so each target queue's rows sit together in the target's
        staging table and qsplit.apply_batch reads each stretch once.  The
        order is only for speed: apply_batch puts every queue's rows in ev_id
        order itself."""
        batch_sql = batch.event_sql
        with self.conn.cursor() as cur:
            if batch_sql is None:
                cur.execute("select pgq.batch_event_sql(%s)", (batch.batch_id,))
                (batch_sql,) = cur.fetchone()
            order = [sql.SQL("b.ev_id")]
            column = route_column(queue_field)
            if column is not None:
                # the hash groups rows as well as the value itself (colliding
                # values share a stretch, which apply_batch handles) at about
                # a third of the sort cost: queue names often share a long
                # prefix, which defeats text sort keys
                order.insert(0, sql.SQL("pg_catalog.hashtext(b.{})").format(sql.Identifier(column)))
            where = sql.SQL("")
            if table_filter:
                # COPY takes no parameters: the names (from the config file)
                # go in as literals quoted by psycopg2
                where = sql.SQL(" where b.ev_extra1 in ({})").format(
                    sql.SQL(", ").join(sql.Literal(t) for t in table_filter))
            # batch_sql is pgq's own query text for this batch (no event data
            # in it); its closing "order by 1" gives way to ours
            query = sql.SQL("copy (select {} from ({}) b{} order by {}) to stdout{}").format(
                sql.SQL(", ").join(sql.SQL("b.{}::pg_catalog.{}").format(sql.Identifier(c), sql.Identifier(t))
                                   for c, t in zip(STAGED_COLUMNS, STAGED_TYPES)),
                sql.SQL(batch_sql.removesuffix(" order by 1")),
                where,
                sql.SQL(", ").join(order),
                sql.SQL(" (format binary)" if binary else ""),
            )
            cur.copy_expert(query, sink)

    def is_open(self, batch_id: int) -> bool:
        """Whether *batch_id* is still this consumer's open batch (another
        driver on the same consumer may have finished it meanwhile).  Reads
        only; the caller ends the transaction."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select current_batch from pgq.get_consumer_info(%s, %s)", (self.queue_name, self.consumer_name)
            )
            row = cur.fetchone()
        return row is not None and row[0] == batch_id

    def finish_batch(self, batch_id: int) -> bool:
        """Close the batch; it takes effect at commit().  False when the batch
        was not open any more (another driver on this consumer finished it).

        This commit need not wait for the disk: if a source crash loses it,
        the batch comes again and the target skips it as applied.  Saving the
        flush matters for small batches."""
        with self.conn.cursor() as cur:
            cur.execute("set local synchronous_commit = off; select pgq.finish_batch(%s)", (batch_id,))
            (found,) = cur.fetchone()
        return found == 1

    def commit(self) -> None:
        self.conn.commit()
