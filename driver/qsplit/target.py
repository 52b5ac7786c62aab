"""The target side: staging table, qsplit.apply_batch(), the commit."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2.extensions

from .source import STAGED_COLUMNS, Batch

COPY_IN = f"copy pg_temp.qsplit_staging ({', '.join(STAGED_COLUMNS)}) from stdin"
COPY_READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class QueueResult:
    queue_name: str | None
    n_events: int
    action: str  # inserted, created, skipped, dead_letter or already_applied


@dataclass(frozen=True)
class RoutePolicies:
    """The ini's on_unknown_queue, on_null_queue and default_queue, and the
    limits of on_unknown_queue = create (create_limit, create_pattern,
    create_fallback)."""

    on_unknown_queue: str = "error"
    on_null_queue: str = "error"
    default_queue: str | None = None
    create_limit: int = 20
    create_pattern: str | None = None
    create_fallback: str = "dead_letter"


class Target:
    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.conn = conn

    def prepare(self) -> None:
        """Create this session's staging table (once per connection, in a
        transaction of its own: the caller commits)."""
        with self.conn.cursor() as cur:
            cur.execute("select qsplit.prepare_staging()")

    def copy_in(self, stream, binary: bool = False) -> int:
        """Load COPY data from *stream* (a file-like with read()) into
        staging, inside the open transaction: COPY's binary format when
        *binary*, else text (as Source.copy_out wrote it).  Returns the
        number of rows."""
        with self.conn.cursor() as cur:
            cur.copy_expert(COPY_IN + (" (format binary)" if binary else ""), stream, size=COPY_READ_SIZE)
            return cur.rowcount

    def apply_batch(self, consumer_name: str, batch: Batch, queue_field: str,
                    policies: RoutePolicies = RoutePolicies(), timeout: float = 0.0) -> list[QueueResult]:
        """Route the staged rows; the transaction stays open for commit().
        *timeout* (seconds, 0 = none) bounds the call: statement_timeout for
        this transaction only, so a route rule that matches too slowly
        cancels the batch (nothing applied, retried) instead of holding the
        consumer forever."""
        del self.conn.notices[:]  # only this batch's are logged after the commit
        with self.conn.cursor() as cur:
            # set_config(..., true) = SET LOCAL, in milliseconds; one round
            # trip with the call (each statement of it gets its own timeout)
            cur.execute(
                "select pg_catalog.set_config('statement_timeout', %(timeout_ms)s, true);"
                " select queue_name, n_events, action from qsplit.apply_batch("
                " i_consumer => %(consumer)s, i_batch_id => %(batch_id)s,"
                " i_prev_tick_id => %(prev_tick_id)s, i_cur_tick_id => %(cur_tick_id)s,"
                " i_prev_tick_time => %(prev_tick_time)s, i_cur_tick_time => %(cur_tick_time)s,"
                " i_queue_field => %(queue_field)s, i_on_unknown => %(on_unknown)s,"
                " i_on_null => %(on_null)s, i_default_queue => %(default_queue)s,"
                " i_create_limit => %(create_limit)s, i_create_pattern => %(create_pattern)s,"
                " i_create_fallback => %(create_fallback)s)",
                {
                    "timeout_ms": str(int(timeout * 1000)),
                    "consumer": consumer_name,
                    "batch_id": batch.batch_id,
                    "prev_tick_id": batch.prev_tick_id,
                    "cur_tick_id": batch.cur_tick_id,
                    "prev_tick_time": batch.prev_tick_time,
                    "cur_tick_time": batch.cur_tick_time,
                    "queue_field": queue_field,
                    "on_unknown": policies.on_unknown_queue,
                    "on_null": policies.on_null_queue,
                    "default_queue": policies.default_queue,
                    "create_limit": policies.create_limit,
                    "create_pattern": policies.create_pattern,
                    "create_fallback": policies.create_fallback,
                },
            )
            return [QueueResult(*row) for row in cur.fetchall()]

    def pgq_ext_state(self, consumer_name: str) -> tuple[bool, int | None, int | None]:
        """(the target has pgq_ext.completed_tick, the consumer's tick
        there, qsplit's position); commits."""
        with self.conn.cursor() as cur:
            cur.execute("select s.has_pgq_ext, s.ext_tick, s.qsplit_tick from qsplit.pgq_ext_state(%s) s",
                        (consumer_name,))
            has_table, ext_tick, own_tick = cur.fetchone()
        self.conn.commit()
        return bool(has_table), ext_tick, own_tick

    def take_notices(self) -> list[str]:
        """The NOTICEs the server sent since the last call (apply_batch says
        so when it took queue_splitter's position from pgq_ext), without
        the "NOTICE:" prefix."""
        notices = [n.strip().removeprefix("NOTICE:").strip() for n in self.conn.notices]
        del self.conn.notices[:]
        return notices

    def position(self, consumer_name: str) -> tuple[int | None, object]:
        """The consumer's position on the target: (last tick id, its tick
        time), (None, None) when it has none."""
        with self.conn.cursor() as cur:
            cur.execute("select last_tick_id, last_tick_time from qsplit.consumer_status where consumer_name = %s",
                        (consumer_name,))
            row = cur.fetchone()
        return (row[0], row[1]) if row else (None, None)

    def take_over_position(self, consumer_name: str) -> int | None:
        """Start from queue_splitter's pgq_ext.completed_tick position when
        this consumer has none here yet (takes effect at commit()); returns
        the tick taken over."""
        with self.conn.cursor() as cur:
            cur.execute("select qsplit.take_over_position(%s)", (consumer_name,))
            (tick,) = cur.fetchone()
        return tick

    def commit(self) -> None:
        self.conn.commit()
