"""Overlapping consecutive batches (``read_ahead = 1``): while the target
applies and commits batch N in one session, batch N+1 already streams from
the source into a second target session's staging table.

PgQ gives a consumer one open batch at a time, and the consumer's position
is what keeps the source's events (rotation) and ticks (maintenance) alive.
So two consumers share the work on the source:

- the consumer of the ini (``pgq_consumer_id``), the *real* one: its
  position only ever moves to a tick the target has committed (with
  pgq.register_consumer_at, forward only).  It never holds a batch.  Its
  lag in pgq.get_consumer_info() is the target's lag, and it keeps every
  event the target does not have yet.
- ``<consumer>.read_ahead``: takes the batches (pgq.next_batch_custom with
  the ini's batch options) and finishes each one as soon as it is read.  It
  runs at most two batches ahead of the real one.

Exactly once: the target's tick check (qsplit.apply_batch) is unchanged.
On every (re)connect ``sync`` puts the read-ahead consumer back at the
target's position when the source still has that tick (else at the real
consumer's): whatever was read ahead and not committed is read again, and
a batch the target committed is never read again.  A crash between the
target commit and the move of the real consumer leaves the real one behind
the target; ``sync`` moves it up.

Two read-ahead drivers on one consumer share the read-ahead consumer; a
batch that one of them applied is skipped by the other (tick check), and a
batch read too far ahead (QS001) makes the driver sync and read again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import psycopg2
import psycopg2.errors

from .failpoints import Failpoints
from .source import BATCH_GONE, NEXT_BATCH_LOCK, Batch, Source
from .stream import StreamError
from .target import Target

log = logging.getLogger("qsplit")

SUFFIX = ".read_ahead"


def read_ahead_name(consumer: str) -> str:
    """The read-ahead consumer's name on the source."""
    return consumer + SUFFIX


_BATCH_COLUMNS = (
    "b.batch_id, b.prev_tick_id, b.cur_tick_id, b.prev_tick_time, b.cur_tick_time,"
    " extract(epoch from now() - b.cur_tick_time)::float8"
)


class ReadAheadSource:
    """The source side of read-ahead mode, on the driver's source connection
    (a Source): every call is one round trip, under Source's per-consumer
    advisory lock (which serialises it with other drivers' next_batch)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.conn = source.conn
        self.queue = source.queue_name
        self.real = source.consumer_name
        self.ahead = read_ahead_name(source.consumer_name)

    def _lock(self) -> tuple[str, tuple]:
        return NEXT_BATCH_LOCK, (self.queue, self.real)

    def sync(self, target_tick: int | None, target_time) -> tuple[int | None, int | None]:
        """Put both consumers where the target is: the real one moves up to
        the target's tick when the source has that tick (same tick time) and
        it is ahead of the real one; the read-ahead consumer (registered if
        new) starts at the real one's position.  Takes effect at the
        caller's commit.  Returns (the real consumer's tick before, the tick
        both are at now)."""
        lock, lock_args = self._lock()
        with self.conn.cursor() as cur:
            cur.execute(
                lock + ";"
                " select i.last_tick,"
                "        (select t.tick_id from pgq.tick t join pgq.queue q on q.queue_id = t.tick_queue"
                "          where q.queue_name = %s and t.tick_id = %s::int8"
                "            and (%s::timestamptz is null or t.tick_time = %s::timestamptz))"
                "   from pgq.get_consumer_info(%s, %s) i",
                lock_args + (self.queue, target_tick, target_time, target_time, self.queue, self.real),
            )
            row = cur.fetchone()
            if row is None:
                raise RuntimeError(f"consumer {self.real!r} is not registered on queue {self.queue!r}")
            real_tick, target_on_source = row
            start = real_tick
            if target_on_source is not None and real_tick is not None and target_on_source > real_tick:
                cur.execute("select pgq.register_consumer_at(%s, %s, %s)", (self.queue, self.real, target_on_source))
                start = target_on_source
            cur.execute("select pgq.register_consumer_at(%s, %s, %s)", (self.queue, self.ahead, start))
        return real_tick, start

    def take(self, advance_to: int | None, finish: int | None, next_batch: bool = True) -> Batch | None:
        """One round trip: move the real consumer up to *advance_to* (a tick
        the target committed; forward only), finish the read-ahead batch
        *finish*, take the next read-ahead batch with its query text (unless
        not *next_batch*).  The caller commits.  None when there is no batch."""
        lock, lock_args = self._lock()
        opts = self.source._custom
        steps = [lock]
        args: list = list(lock_args)
        if advance_to is not None:
            steps.append("select pgq.register_consumer_at(i.queue_name, i.consumer_name, %s::int8)"
                         "  from pgq.get_consumer_info(%s, %s) i where i.last_tick < %s::int8")
            args += [advance_to, self.queue, self.real, advance_to]
        if finish is not None:
            steps.append("select pgq.finish_batch(i.current_batch) from pgq.get_consumer_info(%s, %s) i"
                         " where i.current_batch = %s::int8")
            args += [self.queue, self.ahead, finish]
        query = (
            f"select {_BATCH_COLUMNS}, {{event_sql}}"
            "  from pgq.next_batch_custom(%s, %s, %s::interval, %s::int4, %s::interval) b"
        )
        if next_batch:
            steps.append(query)
            args += [self.queue, self.ahead, *opts]
        else:
            steps.append("select null::int8")
        with self.conn.cursor() as cur:
            sql_text = "; ".join(steps)
            try:
                cur.execute(sql_text.format(
                    event_sql="case when b.batch_id is not null then pgq.batch_event_sql(b.batch_id) end"), args)
            except psycopg2.errors.RaiseException as exc:
                if not (exc.diag.message_primary or "").startswith(BATCH_GONE):
                    raise
                self.conn.rollback()
                cur.execute(sql_text.format(event_sql="null::text"), args)
            row = cur.fetchone()
        if row is None or row[0] is None:
            return None
        return Batch(*row)

    def unregister(self) -> bool:
        """Drop the read-ahead consumer if it is registered (read_ahead
        turned off: left registered, it would hold the source's events for
        ever).  The caller commits.  True when there was one."""
        with self.conn.cursor() as cur:
            cur.execute(
                "select pgq.unregister_consumer(s.queue_name, s.consumer_name)"
                "  from pgq.get_consumer_info(%s) s where s.consumer_name = %s",
                (self.queue, self.ahead),
            )
            row = cur.fetchone()
        return row is not None


T = TypeVar("T")
GONE_RETRIES = 20


def _batch_gone(exc: BaseException) -> bool:
    """Whether *exc* (or what caused it) is pgq saying the batch is no
    longer open."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg2.Error) and (
                (current.diag.message_primary or "").startswith(BATCH_GONE)):
            return True
        current = current.__cause__ or current.__context__
    return False


class _Background(Generic[T]):
    """Run one call in a thread; join() returns its result or raises its
    error."""

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._fn = fn
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to join()
            self._error = exc

    def join(self) -> T | None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


@dataclasses.dataclass
class Staged:
    """A batch streamed into one target session's staging table, not applied."""

    target: Target
    batch: Batch
    count: int
    started: float


class OutOfStep(Exception):
    """The target refused read-ahead *batch* with QS001: its position is not
    the batch's start.  *error* is what to raise when a sync does not help
    (the position really is lost)."""

    def __init__(self, batch: Batch, error: BaseException) -> None:
        super().__init__(str(error))
        self.batch = batch
        self.error = error


# syncs in a row after which a driver that keeps finding the target ahead
# of its batches gives up (other drivers on the consumer are that fast)
BEHIND_SYNCS = 100


class Pipeline:
    """The loop of read-ahead mode: batches through two target sessions,
    each batch's read overlapping the previous batch's apply and commit.

    *stream(batch, target)* COPYs a batch into *target*'s staging and
    returns the row count; *apply(staged)* applies and commits it on its
    target and returns the stats (raising OutOfStep on QS001); *position()*
    reads the target's (tick, tick time).  They are the Splitter's own steps
    with its error handling: the pipeline orders them and makes the
    source's commits."""

    def __init__(self, source: ReadAheadSource, targets: tuple[Target, Target], failpoints: Failpoints,
                 stream: Callable[[Batch, Target], int], apply: Callable[[Staged], T],
                 position: Callable[[], tuple]) -> None:
        self.source = source
        self.targets = targets
        self.failpoints = failpoints
        self._stream = stream
        self._apply = apply
        self._position = position
        self.staged: Staged | None = None
        self.committed: int | None = None  # the target has it, the real consumer is not there yet
        self._finish: int | None = None    # the read-ahead batch to finish at the next take
        # reading the next batch failed while this one was applied: raised at
        # the next process(), after the applied batch is reported
        self._read_error: Exception | None = None
        self._stale = False  # what was read ahead is to be read again (reread)
        # the batch taken whose read failed last (it stays open): for the
        # caller's metrics, which without read-ahead count it as taken
        self.unread: Batch | None = None

    def sync(self) -> tuple[int | None, int | None]:
        """Both consumers to the target's position (see ReadAheadSource.sync);
        forgets whatever was read ahead."""
        self.staged = None
        self.committed = None
        self._finish = None
        self._read_error = None
        self.unread = None
        tick, tick_time = self._position()
        moved = self.source.sync(tick, tick_time)
        self.source.conn.commit()
        return moved

    def reread(self) -> None:
        """Read again, at the next process(), whatever was read ahead: the
        config it was read under changed (a reload of table_filter)."""
        self._stale = True

    def _take(self, next_batch: bool = True) -> Batch | None:
        moves = self.committed is not None or self._finish is not None
        batch = self.source.take(self.committed, self._finish, next_batch)
        if moves:
            self.failpoints.hit("after_finish_batch")
        self.source.conn.commit()
        # both took effect with the commit
        self.committed = None
        self._finish = None
        if batch is not None:
            self._finish = batch.batch_id
        return batch

    def _read(self, target: Target) -> Staged | None:
        for _ in range(GONE_RETRIES):
            batch = self._take()
            if batch is None:
                return None
            self.failpoints.hit("after_next_batch")
            started = time.monotonic()
            try:
                count = self._stream(batch, target)
            except Exception as exc:
                if not _batch_gone(exc):
                    self.unread = batch
                    raise
                # another driver on this consumer finished the read-ahead
                # batch while this one was about to read it: it has the
                # batch, this one takes the next
                target.conn.rollback()
                self.source.conn.rollback()
                self._finish = None
                log.info("read-ahead batch %d (ticks %d..%d) was taken on by another driver; taking the next one",
                         batch.batch_id, batch.prev_tick_id, batch.cur_tick_id)
                continue
            self.failpoints.hit("after_copy")
            return Staged(target, batch, count, started)
        raise StreamError(f"read-ahead: {GONE_RETRIES} batches in a row were finished by other drivers on "
                          f"consumer {self.source.real!r} before this one could read them")

    def process(self):
        """Apply the next batch (reading the one after it meanwhile); its
        stats, or None when there was no batch.

        QS001 on a read-ahead batch: when the target is past the batch's
        start, other drivers on this consumer applied it (or more): sync and
        read on from the target's position.  When the target is behind the
        batch (a driver read past a batch another one has not committed
        yet), sync once; a second refusal straight after is a real lost
        position and raised as without read-ahead."""
        behind_syncs = 0
        retried_ahead = False
        while True:
            try:
                return self._process()
            except OutOfStep as exc:
                self._rollback_targets()
                target_tick, _ = self._position()
                behind = target_tick is not None and target_tick > exc.batch.prev_tick_id
                if behind and behind_syncs < BEHIND_SYNCS:
                    behind_syncs += 1
                elif not behind and not retried_ahead:
                    retried_ahead = True
                else:
                    raise exc.error from None
                _, now = self.sync()
                log.info("read-ahead batch %d (ticks %d..%d) out of step with the target (at tick %s, %s): "
                         "reading again from tick %s", exc.batch.batch_id, exc.batch.prev_tick_id,
                         exc.batch.cur_tick_id, target_tick,
                         "another driver on the consumer applied it" if behind else "ahead of it", now)

    def _rollback_targets(self) -> None:
        for t in self.targets:
            t.conn.rollback()

    def _process(self):
        if self._stale:
            self._stale = False
            self._rollback_targets()
            self.source.conn.rollback()
            self.sync()
        if self._read_error is not None:
            error, self._read_error = self._read_error, None
            raise error
        self.unread = None
        if self.staged is None:
            self.staged = self._read(self.targets[0])
            if self.staged is None:
                return None
        current, self.staged = self.staged, None
        other = self.targets[1] if current.target is self.targets[0] else self.targets[0]
        ahead = _Background(lambda: self._read(other), "qsplit-read-ahead")
        try:
            stats = self._apply(current)
        except BaseException:
            try:
                ahead.join()
            except BaseException:  # noqa: BLE001 - the apply's error is the one to report
                pass
            raise
        try:
            self.staged = ahead.join()
        except Exception as exc:  # noqa: BLE001 - raised at the next call
            # the batch is committed on the target: it is reported (stats
            # line, the original's stats line) as without read-ahead, and
            # the next batch's error comes at the next call, as it would
            # there; the real consumer moves at the flush of close()
            self._read_error = exc
        # the target committed the batch: the real consumer moves there at
        # the next take (or now, when nothing more was read).  Set only
        # after the join: the read-ahead thread's take uses and clears it.
        self.committed = current.batch.cur_tick_id
        if self.staged is None and self._read_error is None:
            self.flush()
        return stats

    def flush(self) -> None:
        """Move the real consumer to the last tick the target committed, if
        it is not there yet (before idling or stopping)."""
        if self.committed is None:
            return
        self.source.conn.rollback()  # whatever read was open
        finish, self._finish = self._finish, None
        self._take(next_batch=False)
        self._finish = finish
