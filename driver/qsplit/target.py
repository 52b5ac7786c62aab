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
    action: str  # 'inserted' or 'already_applied'


class Target:
    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.conn = conn

    def prepare(self) -> None:
        """Create this session's staging table (once per connection)."""
        with self.conn.cursor() as cur:
            cur.execute("select qsplit.prepare_staging()")
        self.conn.commit()

    def copy_in(self, stream) -> int:
        """Load COPY text from *stream* (a file-like with read()) into staging,
        inside the open transaction.  Returns the number of rows."""
        with self.conn.cursor() as cur:
            cur.copy_expert(COPY_IN, stream, size=COPY_READ_SIZE)
            return cur.rowcount

    def apply_batch(self, consumer_name: str, batch: Batch, queue_field: str) -> list[QueueResult]:
        """Route the staged rows; the transaction stays open for commit()."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select queue_name, n_events, action from qsplit.apply_batch(%s, %s, %s, %s, %s)",
                (consumer_name, batch.batch_id, batch.prev_tick_id, batch.cur_tick_id, queue_field),
            )
            return [QueueResult(*row) for row in cur.fetchall()]

    def commit(self) -> None:
        self.conn.commit()
