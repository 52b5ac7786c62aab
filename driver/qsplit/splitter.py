"""The consumer loop: next batch -> commit source -> stream -> apply_batch ->
commit target -> finish_batch -> commit source.

Every transaction boundary is an explicit commit, here in the loop: the
Source and Target methods never commit (as in python-pgq's work()).  The
target commit (events plus the consumer's new position) comes before
pgq.finish_batch on the source, so a crash between the two replays the
batch, and apply_batch recognises it as applied.

With read_ahead = 1, process_batch hands over to readahead.Pipeline: the
same steps (_stream_into, _apply_staged, the target commit here), with
batch N+1 read into a second target session while batch N is applied; the
pipeline makes the source's commits (readahead.py says why that keeps
exactly once).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2

from . import db, encoding
from .config import Config
from .signals import Control
from .failpoints import Failpoints
from .metrics import Observer
from .readahead import OutOfStep, Pipeline, ReadAheadSource, Staged
from .source import Batch, Source
from .statslog import StatsLine
from .stream import CopyPipe, StreamError, copy_binary, describe_copy_format, pump
from .target import QueueResult, RoutePolicies, Target

log = logging.getLogger("qsplit")

BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
NAMED_MAX = 20  # queue names listed per action in a batch's stats line

# config keys whose change on reload (SIGHUP) needs new connections
RECONNECT_KEYS = (
    "src_db", "dst_db", "pgq_queue_name", "pgq_consumer_id", "connect_timeout", "keepalive_idle",
    "keepalive_interval", "keepalive_count", "pgq_batch_collect_events", "pgq_batch_collect_interval",
    "pgq_keep_lag", "job_name", "read_ahead", "copy_format",
)
# config keys a batch is read (streamed) under: a change on reload makes
# read_ahead's pipeline read its next batch again
READ_KEYS = ("queue_field", "table_filter")


def batch_options(cfg: Config) -> dict[str, object]:
    """The pgq.next_batch_custom arguments of the config."""
    return {
        "min_lag": cfg.pgq_keep_lag,
        "min_count": cfg.pgq_batch_collect_events,
        "min_interval": cfg.pgq_batch_collect_interval,
    }


@dataclass
class BatchStats:
    batch: Batch
    count: int
    duration: float
    queues: list[QueueResult] = field(default_factory=list)
    idle: float = 0.0  # seconds between the end of the previous batch and this one

    @property
    def already_applied(self) -> bool:
        return any(q.action == "already_applied" for q in self.queues)

    def line(self) -> str:
        head = (
            f"batch {self.batch.batch_id} (ticks {self.batch.prev_tick_id}..{self.batch.cur_tick_id}) "
            f"{'skipped, already applied on the target' if self.already_applied else 'applied'}: "
            f"{{count: {self.count}, duration: {self.duration:.3f}, lag: {self.batch.lag:.3f}, idle: {self.idle:.3f}}}"
        )
        per_queue: dict[str | None, int] = {}
        for q in self.queues:
            if q.action in ("inserted", "created"):
                per_queue[q.queue_name] = per_queue.get(q.queue_name, 0) + q.n_events
        if per_queue:
            head += " queues: " + json.dumps(per_queue, ensure_ascii=False)
        for action, label in (("created", "created queues"), ("skipped", "skipped"), ("dead_letter", "dead letters")):
            named = [q for q in self.queues if q.action == action]
            if named:
                # the biggest few, in apply_batch's order: a batch may hold
                # one unknown name per event
                biggest = sorted(range(len(named)), key=lambda i: -named[i].n_events)[:NAMED_MAX]
                shown = {named[i].queue_name: named[i].n_events for i in sorted(biggest)}
                head += f" {label}: " + json.dumps(shown, ensure_ascii=False)
                if len(named) > len(shown):
                    rest = sum(q.n_events for q in named) - sum(shown.values())
                    head += f" (+{len(named) - len(shown)} more, {rest} events)"
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
    def __init__(self, config: Config, failpoints: Failpoints | None = None, metrics: Observer | None = None) -> None:
        self.config = config
        self.failpoints = failpoints or Failpoints()
        # told at named points: connected, begin/taken (next_batch), step,
        # done, failed (see metrics.py); the base Observer records nothing
        self.metrics = metrics or Observer()
        self.source: Source | None = None
        self.target: Target | None = None
        # read_ahead: the second target session and the loop that uses both
        self.target2: Target | None = None
        self.pipeline: Pipeline | None = None
        # COPY the batches in binary (source and target on the same major)
        self.copy_binary = False
        self._copy_format: str | None = None  # logged when it changes
        self.connected_at = 0.0
        self._pgq_ext_checked = False  # the consumer-name check runs on the first connection only
        self.log_statements = False  # -vv: every statement at DEBUG
        self._last_batch_end = time.monotonic()

    # connections ---------------------------------------------------------
    def connect(self) -> None:
        cfg = self.config
        app = f"qsplit-driver {cfg.job_name}"
        defaults = db.connection_defaults(cfg.connect_timeout, cfg.keepalive_idle, cfg.keepalive_interval,
                                          cfg.keepalive_count)
        opened = [db.connect(cfg.src_db, app, defaults=defaults, log_statements=self.log_statements)]
        try:
            for _ in range(2 if cfg.read_ahead else 1):
                opened.append(db.connect(cfg.dst_db, app, defaults=defaults, log_statements=self.log_statements))
        except BaseException:
            for conn in opened:
                conn.close()
            raise
        self.source = Source(opened[0], cfg.queue_name, cfg.consumer_name, batch_options(cfg))
        self.target = Target(opened[1])
        self.target2 = Target(opened[2]) if cfg.read_ahead else None
        self.connected_at = time.monotonic()
        self._choose_copy_format(cfg.copy_format, opened[0].server_version, opened[1].server_version)
        self.target.prepare()
        self.target.commit()
        if self.target2 is not None:
            self.target2.prepare()
            self.target2.commit()
        taken = self.target.take_over_position(cfg.consumer_name)
        self.target.commit()
        if taken is not None:
            log.info("consumer %r: took over position tick %d from pgq_ext.completed_tick (queue_splitter's)",
                     cfg.consumer_name, taken)
        elif not self._pgq_ext_checked:
            self._warn_consumer_mismatch()
        self._pgq_ext_checked = True
        registered = self.source.register()
        self.source.commit()
        if registered:
            log.info("registered consumer %r on source queue %r", cfg.consumer_name, cfg.queue_name)
        self._connect_read_ahead()
        self.metrics.connected()

    def _connect_read_ahead(self) -> None:
        """read_ahead on: the pipeline over both target sessions, its two
        source consumers put where the target is.  Off: no read-ahead
        consumer left behind on the source (it would hold the events)."""
        assert self.source is not None and self.target is not None
        cfg = self.config
        ahead = ReadAheadSource(self.source)
        if self.target2 is None:
            self.pipeline = None
            if ahead.unregister():
                log.info("read_ahead is off: unregistered the read-ahead consumer %r", ahead.ahead)
            self.source.commit()
            return
        self.pipeline = Pipeline(ahead, (self.target, self.target2), self.failpoints,
                                 self._stream_into, self._apply_staged, self._target_position)
        before, now = self.pipeline.sync()
        if before is not None and now is not None and now != before:
            log.info("consumer %r moved from tick %d to tick %d, the target's position (committed there before"
                     " the source heard of it)", cfg.consumer_name, before, now)
        log.info("read_ahead: consumer %r reads ahead from tick %s for consumer %r",
                 ahead.ahead, now, cfg.consumer_name)

    def _warn_consumer_mismatch(self) -> None:
        """Once per run: the target has queue_splitter's pgq_ext table but
        neither its row nor a qsplit position for this consumer, which is
        what an ini file naming another consumer than the one the original
        ran under looks like (e.g. its other section): its batches would be
        applied again."""
        assert self.target is not None
        cfg = self.config
        has_table, ext_tick, own_tick = self.target.pgq_ext_state(cfg.consumer_name)
        if not has_table or ext_tick is not None or own_tick is not None:
            return
        others = {c for c in cfg.other_sections.values() if c and c != cfg.consumer_name}
        hint = (f"; the file's other section(s) name {', '.join(repr(c) for c in sorted(others))}" if others else "")
        log.warning(
            "consumer %r (section [%s] of %s): the target has queue_splitter's pgq_ext.completed_tick but no "
            "position for this consumer%s. If queue_splitter ran on this target under another consumer name, "
            "stop and set pgq_consumer_id to that name, or the batches it applied are applied again",
            cfg.consumer_name, cfg.section, cfg.path, hint,
        )

    def cancel(self) -> None:
        """Cancel the statements in progress on every connection (called from
        another thread when a stop-now signal arrives)."""
        for side in (self.source, self.target, self.target2):
            if side is not None and not side.conn.closed:
                side.conn.cancel()

    def close(self) -> None:
        if self.pipeline is not None:
            try:
                # the real consumer to the target's last commit (a crash here
                # is safe too: the next connect's sync does it)
                self.pipeline.flush()
            except psycopg2.Error:
                pass
            self.pipeline = None
        for side in (self.source, self.target, self.target2):
            if side is not None and not side.conn.closed:
                side.conn.close()
        self.source = self.target = self.target2 = None

    def _choose_copy_format(self, setting: str, source_version: int, target_version: int) -> None:
        """The ini's copy_format: auto = binary COPY when both servers run
        the same major, else text (see stream.py); text = always text.  Said
        in the log at the first connect and whenever a reconnect finds it
        changed (a server upgraded meanwhile, a reload)."""
        self.copy_binary = setting == "auto" and copy_binary(source_version, target_version)
        described = (describe_copy_format(source_version, target_version) if setting == "auto"
                     else "text (copy_format = text)")
        if described != self._copy_format:
            log.info("COPY format: %s", described)
            self._copy_format = described

    # one batch -------------------------------------------------------------
    def process_batch(self) -> BatchStats | None:
        """Move the next batch, if there is one.  On error nothing is half
        done: the target transaction is rolled back (by the caller closing the
        connections) and the batch stays open on the source."""
        if self.source is None or self.target is None:
            self.connect()
        assert self.source is not None and self.target is not None
        if self.pipeline is not None:
            self.metrics.begin()
            try:
                stats = self.pipeline.process()
            except Exception:
                # a batch taken and not read stays open, as a batch refused
                # after next_batch does without read-ahead (qsplit_batch_open)
                if self.pipeline is not None and self.pipeline.unread is not None:
                    self.metrics.taken(self.pipeline.unread)
                raise
            if stats is None:
                self.metrics.taken(None)
            return stats
        source, target, fp = self.source, self.target, self.failpoints

        self.metrics.begin()
        batch = source.next_batch()
        # committed at once: a batch once taken keeps its ticks until
        # finish_batch, so a crash anywhere later gets the very same batch
        # again, which the target recognises as applied (see Source.next_batch)
        source.commit()
        self.metrics.taken(batch)
        if batch is None:
            return None
        fp.hit("after_next_batch")
        started = time.monotonic()

        pipe = CopyPipe(on_first_chunk=lambda: fp.hit("mid_copy"))
        try:
            count = self._pump(batch, target, pipe)
        except (StreamError, psycopg2.Error) as exc:
            if encoding.is_encoding_error(exc):
                raise BatchError(encoding.INVALID_BYTES, *encoding.explain(self.config, batch.batch_id)) from exc
            if isinstance(exc, StreamError) and self._finished_elsewhere(batch):
                return self._skipped(batch, 0, started)
            raise
        self.metrics.step("stream")
        fp.hit("after_copy")
        try:
            queues = self._apply(target, batch)
        except psycopg2.Error as exc:
            if exc.pgcode == "QS001" and self._finished_elsewhere(batch):
                return self._skipped(batch, count, started)
            error = _batch_error(exc)
            if error is not None:
                raise error from exc
            raise
        self.metrics.step("apply")
        fp.hit("before_target_commit")
        self._commit_target(target)
        fp.hit("after_target_commit")
        return self._finish(batch, count, queues, started)

    def _apply(self, target: Target, batch: Batch) -> list[QueueResult]:
        """qsplit.apply_batch for the batch staged on *target*, with the
        ini's queue_field, policies and apply_timeout: the one place both
        loops call it, so both route alike."""
        cfg = self.config
        policies = RoutePolicies(cfg.on_unknown_queue, cfg.on_null_queue, cfg.default_queue,
                                 cfg.create_limit, cfg.create_pattern, cfg.create_fallback)
        return target.apply_batch(cfg.consumer_name, batch, cfg.queue_field, policies, cfg.apply_timeout)

    @staticmethod
    def _commit_target(target: Target) -> None:
        """Commit *target*'s batch and log what the server said meanwhile
        (apply_batch's NOTICE when it took queue_splitter's position)."""
        target.commit()
        for notice in target.take_notices():
            log.info("%s", notice)

    def _pump(self, batch: Batch, target: Target, pipe: CopyPipe) -> int:
        """COPY *batch* from the source into *target*'s staging through
        *pipe*: the one place both loops read a batch, so both apply the
        ini's queue_field and table_filter alike."""
        assert self.source is not None
        source, cfg = self.source, self.config
        binary = self.copy_binary
        return pump(lambda sink: source.copy_out(batch, sink, cfg.queue_field, cfg.table_filter, binary),
                    lambda stream: target.copy_in(stream, binary), pipe)

    # the steps of read_ahead's pipeline (readahead.Pipeline orders them) ---
    def _stream_into(self, batch: Batch, target: Target) -> int:
        """COPY *batch* from the source into *target*'s staging table."""
        fp = self.failpoints
        pipe = CopyPipe(on_first_chunk=lambda: fp.hit("mid_copy"))
        try:
            return self._pump(batch, target, pipe)
        except (StreamError, psycopg2.Error) as exc:
            if encoding.is_encoding_error(exc):
                raise BatchError(encoding.INVALID_BYTES, *encoding.explain(self.config, batch.batch_id)) from exc
            raise

    def _apply_staged(self, staged: Staged) -> BatchStats:
        """Apply and commit a staged batch on its target session; QS001 (the
        target is not at the batch's start) is OutOfStep for the pipeline."""
        fp = self.failpoints
        batch = staged.batch
        self.metrics.taken(batch)
        self.metrics.step("stream")
        try:
            queues = self._apply(staged.target, batch)
        except psycopg2.Error as exc:
            error = _batch_error(exc)
            if exc.pgcode == "QS001":
                raise OutOfStep(batch, error or exc) from exc
            if error is not None:
                raise error from exc
            raise
        self.metrics.step("apply")
        fp.hit("before_target_commit")
        self._commit_target(staged.target)
        fp.hit("after_target_commit")
        self.metrics.step("commits")
        stats = BatchStats(batch, staged.count, time.monotonic() - staged.started, queues,
                           idle=max(0.0, staged.started - self._last_batch_end))
        self._last_batch_end = time.monotonic()
        log.info("%s", stats.line())
        self.metrics.done(stats)
        return stats

    def _target_position(self) -> tuple:
        assert self.target is not None
        position = self.target.position(self.config.consumer_name)
        self.target.commit()
        return position

    def _finish(self, batch: Batch, count: int, queues: list[QueueResult], started: float) -> BatchStats:
        assert self.source is not None
        if not self.source.finish_batch(batch.batch_id):
            log.warning(
                "batch %d was no longer open on the source when it was finished: another driver on consumer %r"
                " finished or re-took it (the target applied its ticks once)",
                batch.batch_id, self.config.consumer_name,
            )
        self.failpoints.hit("after_finish_batch")
        self.source.commit()
        self.metrics.step("commits")
        stats = BatchStats(batch, count, time.monotonic() - started, queues, idle=started - self._last_batch_end)
        self._last_batch_end = time.monotonic()
        log.info("%s", stats.line())
        self.metrics.done(stats)
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
            still_open = self.source.is_open(batch.batch_id)
            self.source.commit()
            return not still_open
        except psycopg2.Error:
            return False

    def _skipped(self, batch: Batch, count: int, started: float) -> BatchStats:
        """Drop *batch*: its ticks are done or held by another driver, which
        apply_batch's tick check keeps exactly once."""
        log.info(
            "batch %d (ticks %d..%d) left to another driver: it is no longer consumer %r's open batch on the source",
            batch.batch_id, batch.prev_tick_id, batch.cur_tick_id, self.config.consumer_name,
        )
        stats = BatchStats(batch, count, time.monotonic() - started, [])
        self.metrics.done(stats, "left_to_another_driver")
        return stats

    # the loop --------------------------------------------------------------
    def run(self, once: bool = False, control: Control | None = None,
            reload: Callable[[], Config | None] | None = None) -> int:
        """Process batches until stopped.  With *once*, process every batch
        available now and return 0, or 1 at the first error.  Without, errors
        are logged once and retried with exponential backoff (capped).
        *control* carries the signals: SIGINT ends the loop after the batch
        in progress (return 0), SIGHUP calls *reload* between batches, and
        SIGTERM raises control.Terminate out of here; every way out closes
        both connections, which rolls back whatever was open."""
        control = control or Control()
        backoff = BACKOFF_START
        failures: list[str] = []
        idle_since = idle_logged = time.monotonic()
        # the original's per-batch line and idle heartbeat (statslog)
        compat = StatsLine(self.config.keepalive_stats)
        try:
            while True:
                control.check()
                if control.stop_requested:
                    log.info("stop requested (SIGINT): exiting between batches")
                    return 0
                if control.reload_requested:
                    control.reload_requested = False
                    self._reload(reload)
                    compat.keepalive = self.config.keepalive_stats
                compat.start()
                try:
                    stats = self.process_batch()
                except (BatchError, StreamError, psycopg2.Error, OSError) as exc:
                    self.close()  # rolls back whatever was open on either side
                    compat.send(log)
                    self.metrics.failed(*_failure_kind(exc))
                    control.check()  # a statement cancelled by a stop-now signal is no error
                    message = describe_error(exc, self.config)
                    if once:
                        log.error("%s", message)
                        return 1
                    # exception_sleep set: the original's fixed delay; else
                    # exponential backoff
                    fixed = self.config.exception_sleep
                    delay = fixed if fixed is not None else backoff
                    if isinstance(exc, BatchError) or not failures or failures[-1] != message:
                        # a refused batch: one line per retry (what is wrong,
                        # what to do, when again); an outage: its first error
                        log.error("%s; retrying in %s s", message, _seconds(delay))
                    else:
                        log.debug("still failing (attempt %d), retrying in %s s: %s",
                                  len(failures) + 1, _seconds(delay), message)
                    failures.append(message)
                    control.sleep(delay)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                if stats is not None:
                    compat.batch(stats.count)
                compat.send(log)
                if failures:
                    log.info("recovered after %d failed attempt(s)", len(failures))
                    failures.clear()
                backoff = BACKOFF_START
                self._check_lifetime()
                now = time.monotonic()
                if stats is not None:
                    idle_since = idle_logged = now
                    continue
                if once:
                    return 0
                if self.config.idle_log_interval > 0 and now - idle_logged >= self.config.idle_log_interval:
                    log.info("idle: no batch for %.0f s (loop_delay %g s)", now - idle_since, self.config.loop_delay)
                    idle_logged = now
                control.sleep(self.config.loop_delay)
        finally:
            self.close()

    def _check_lifetime(self) -> None:
        lifetime = self.config.connection_lifetime
        if self.source is not None and lifetime > 0 and time.monotonic() - self.connected_at >= lifetime:
            log.info("connection_lifetime (%g s) reached: reconnecting", lifetime)
            self.close()

    def _reload(self, reload: Callable[[], Config | None] | None) -> None:
        new = reload() if reload is not None else None
        if new is None:
            return
        old, self.config = self.config, new
        if any(getattr(old, k) != getattr(new, k) for k in RECONNECT_KEYS):
            log.info("connection settings changed: reconnecting")
            self.close()
        elif self.pipeline is not None and any(getattr(old, k) != getattr(new, k) for k in READ_KEYS):
            # the next batch was read under the old keys: as without
            # read-ahead, the new ones apply from the next batch
            log.info("queue_field or table_filter changed: the batch read ahead is read again")
            self.pipeline.reread()


def _batch_error(exc: psycopg2.Error) -> BatchError | None:
    """apply_batch's refusal (a QSnnn error) as a BatchError; None for any
    other error."""
    if not (exc.pgcode and exc.pgcode.startswith("QS")):
        return None
    message = exc.diag.message_primary or str(exc)
    if exc.diag.message_detail:
        message += f"; {exc.diag.message_detail}"
    return BatchError(exc.pgcode, message, exc.diag.message_hint)


def _seconds(delay: float) -> str:
    """A delay as the log says it: whole seconds without decimals."""
    return f"{delay:.0f}" if float(delay).is_integer() else f"{delay:g}"


def describe_error(exc: BaseException, cfg: Config) -> str:
    """The one line logged for a failed batch: what failed, a lost connection
    the same however psycopg2 surfaced it, else the queue and consumer."""
    if isinstance(exc, BatchError):
        return f"batch not applied, it stays open on the source: [{exc.pgcode}] {exc}"
    lost = _lost_connection(exc)
    if lost is not None:
        first = str(lost).strip().splitlines()[0] if str(lost).strip() else type(lost).__name__
        where = " (while streaming the batch)" if isinstance(exc, StreamError) else ""
        return f"database connection failed{where}: {first}"
    if isinstance(exc, psycopg2.Error):
        diag = exc.diag
        text = diag.message_primary or str(exc).strip()
        if diag.message_hint:
            text += f" (HINT: {diag.message_hint})"
        code = f"[{exc.pgcode}] " if exc.pgcode else ""
        return f"queue {cfg.queue_name!r}, consumer {cfg.consumer_name!r}: {code}{text}"
    cause = _database_error(exc)
    code = f"[{cause.pgcode}] " if cause is not None and cause.pgcode else ""
    return f"queue {cfg.queue_name!r}, consumer {cfg.consumer_name!r}: {code}{exc}"


def _database_error(exc: BaseException) -> psycopg2.Error | None:
    """The database error behind *exc* (a StreamError wraps the one that
    broke its COPY), for its SQLSTATE."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg2.Error):
            return current
        current = current.__cause__ or current.__context__
    return None


# SQLSTATEs that mean the session is gone: class 08 (connection exception),
# admin_shutdown, crash_shutdown, cannot_connect_now
_LOST_SQLSTATES = ("57P01", "57P02", "57P03")


def is_lost_connection(exc: BaseException) -> bool:
    """Whether *exc* itself says the connection is gone: SQLSTATE class 08 or
    57P01-57P03, or an error libpq raised without a SQLSTATE (server closed
    the connection, could not connect, connection already closed).  psycopg2
    makes OperationalError of much more (lock and statement timeouts, out of
    memory, "index row size exceeds" ...): those are statement errors, logged
    with their SQLSTATE."""
    if not isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return False
    code = exc.pgcode
    return code is None or code.startswith("08") or code in _LOST_SQLSTATES


def _failure_kind(exc: BaseException) -> tuple[str, str | None]:
    """How a failed batch attempt counts in the metrics: (refused, its
    code), (connection, None) or (database, None)."""
    if isinstance(exc, BatchError):
        return "refused", exc.pgcode
    return ("connection" if _lost_connection(exc) is not None else "database"), None


def _lost_connection(exc: BaseException) -> BaseException | None:
    """The connection error behind *exc*, if that is what it is: a lost
    connection can surface as itself, as psycopg2's InterfaceError on a
    closed connection, or wrapped in the StreamError of the COPY it broke."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_lost_connection(current):
            return current
        current = current.__cause__ or current.__context__
    return None
