"""The consumer loop: next batch -> stream -> apply_batch -> commit target ->
finish_batch -> commit source.

Every transaction boundary is an explicit commit.  The target commit (events
plus the consumer's new position) comes before pgq.finish_batch on the
source, so a crash between the two replays the batch, and apply_batch
recognises it as applied.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import psycopg2

from . import db
from .config import Config
from .failpoints import Failpoints
from .source import Batch, Source
from .stream import CopyPipe, StreamError, pump
from .target import QueueResult, Target

log = logging.getLogger("qsplit")

BACKOFF_START = 1.0
BACKOFF_MAX = 60.0


@dataclass
class BatchStats:
    batch: Batch
    count: int
    duration: float
    queues: list[QueueResult] = field(default_factory=list)

    @property
    def already_applied(self) -> bool:
        return any(q.action == "already_applied" for q in self.queues)

    def line(self) -> str:
        head = (
            f"batch {self.batch.batch_id} (ticks {self.batch.prev_tick_id}..{self.batch.cur_tick_id}) "
            f"{'skipped, already applied on the target' if self.already_applied else 'applied'}: "
            f"{{count: {self.count}, duration: {self.duration:.3f}, lag: {self.batch.lag:.3f}}}"
        )
        per_queue = {q.queue_name: q.n_events for q in self.queues if q.action == "inserted"}
        if per_queue:
            head += " queues: " + json.dumps(per_queue, ensure_ascii=False)
        return head


class BatchError(Exception):
    """qsplit.apply_batch refused the batch (a QSnnn error): nothing of it was
    applied and it stays open on the source."""

    def __init__(self, pgcode: str, message: str, hint: str | None) -> None:
        super().__init__(message)
        self.pgcode = pgcode
        self.hint = hint

    def __str__(self) -> str:
        text = self.args[0]
        return f"{text} (HINT: {self.hint})" if self.hint else text


class Splitter:
    def __init__(self, config: Config, failpoints: Failpoints | None = None) -> None:
        self.config = config
        self.failpoints = failpoints or Failpoints()
        self.source: Source | None = None
        self.target: Target | None = None

    # connections ---------------------------------------------------------
    def connect(self) -> None:
        cfg = self.config
        app = f"qsplit-driver {cfg.job_name}"
        log.debug("connecting to source %s and target %s", db.describe(cfg.src_db), db.describe(cfg.dst_db))
        src = db.connect(cfg.src_db, app)
        try:
            dst = db.connect(cfg.dst_db, app)
        except BaseException:
            src.close()
            raise
        self.source = Source(src, cfg.queue_name, cfg.consumer_name)
        self.target = Target(dst)
        self.target.prepare()
        if self.source.register():
            log.info("registered consumer %r on source queue %r", cfg.consumer_name, cfg.queue_name)

    def close(self) -> None:
        for side in (self.source, self.target):
            if side is not None and not side.conn.closed:
                side.conn.close()
        self.source = self.target = None

    # one batch -------------------------------------------------------------
    def process_batch(self) -> BatchStats | None:
        """Move the next batch, if there is one.  On error nothing is half
        done: the target transaction is rolled back (by the caller closing the
        connections) and the batch stays open on the source."""
        if self.source is None or self.target is None:
            self.connect()
        assert self.source is not None and self.target is not None
        source, target, fp = self.source, self.target, self.failpoints

        batch = source.next_batch()
        if batch is None:
            return None
        fp.hit("after_next_batch")
        started = time.monotonic()

        pipe = CopyPipe(on_first_chunk=lambda: fp.hit("mid_copy"))
        try:
            count = pump(lambda sink: source.copy_out(batch.batch_id, sink), target.copy_in, pipe)
        except StreamError:
            if self._finished_elsewhere(batch):
                return self._skipped(batch, 0, started)
            raise
        fp.hit("after_copy")
        try:
            queues = target.apply_batch(self.config.consumer_name, batch, self.config.queue_field)
        except psycopg2.Error as exc:
            if exc.pgcode == "QS001" and self._finished_elsewhere(batch):
                return self._skipped(batch, count, started)
            if exc.pgcode and exc.pgcode.startswith("QS"):
                raise BatchError(exc.pgcode, exc.diag.message_primary or str(exc), exc.diag.message_hint) from exc
            raise
        fp.hit("before_target_commit")
        target.commit()
        fp.hit("after_target_commit")
        return self._finish(batch, count, queues, started)

    def _finish(self, batch: Batch, count: int, queues: list[QueueResult], started: float) -> BatchStats:
        assert self.source is not None
        self.source.finish_batch(batch.batch_id)
        self.failpoints.hit("after_finish_batch")
        self.source.commit()
        stats = BatchStats(batch, count, time.monotonic() - started, queues)
        log.info("%s", stats.line())
        return stats

    def _finished_elsewhere(self, batch: Batch) -> bool:
        """After reading or applying *batch* failed: is it no longer this
        consumer's open batch on the source?  pgq.next_batch hands one batch
        to every driver on a consumer, and two drivers calling it at once can
        even get two batch ids for the same ticks; another driver may then
        have finished the batch (the target moved past it) or re-taken its
        ticks under a new batch id.  Rolls back both sides; False when that
        is not possible."""
        assert self.source is not None and self.target is not None
        try:
            self.target.conn.rollback()
            self.source.conn.rollback()
            return not self.source.is_open(batch.batch_id)
        except psycopg2.Error:
            return False

    def _skipped(self, batch: Batch, count: int, started: float) -> BatchStats:
        """Drop *batch*: its ticks are done or held by another driver, which
        apply_batch's tick check keeps exactly once."""
        log.info(
            "batch %d (ticks %d..%d) left to another driver: it is no longer consumer %r's open batch on the source",
            batch.batch_id, batch.prev_tick_id, batch.cur_tick_id, self.config.consumer_name,
        )
        return BatchStats(batch, count, time.monotonic() - started, [])

    # the loop --------------------------------------------------------------
    def run(self, once: bool = False) -> int:
        """Process batches until stopped.  With *once*, process every batch
        available now and return 0, or 1 at the first error.  Without, errors
        are logged and retried with exponential backoff (capped)."""
        backoff = BACKOFF_START
        try:
            while True:
                try:
                    stats = self.process_batch()
                except (BatchError, StreamError, psycopg2.Error, OSError) as exc:
                    self.close()  # rolls back whatever was open on either side
                    log.error("%s", _describe_error(exc, self.config))
                    if once:
                        return 1
                    log.info("retrying in %.0f s", backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                backoff = BACKOFF_START
                if stats is None:
                    if once:
                        return 0
                    time.sleep(self.config.loop_delay)
        finally:
            self.close()


def _describe_error(exc: BaseException, cfg: Config) -> str:
    if isinstance(exc, BatchError):
        return f"batch not applied, it stays open on the source: [{exc.pgcode}] {exc}"
    if isinstance(exc, psycopg2.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"database connection failed: {first}"
    if isinstance(exc, psycopg2.Error):
        diag = exc.diag
        text = diag.message_primary or str(exc).strip()
        if diag.message_hint:
            text += f" (HINT: {diag.message_hint})"
        code = f"[{exc.pgcode}] " if exc.pgcode else ""
        return f"queue {cfg.queue_name!r}, consumer {cfg.consumer_name!r}: {code}{text}"
    return f"queue {cfg.queue_name!r}, consumer {cfg.consumer_name!r}: {exc}"
