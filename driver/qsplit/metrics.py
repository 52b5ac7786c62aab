"""Prometheus metrics of the driver (opt-in: the metrics_port key).

The loop reports to one object, passed to the Splitter, at a few named
points: ``connected``, ``taken`` (after next_batch), ``step`` (after each
later step of a batch), ``done`` and ``failed``.  ``Observer`` is that
interface and does nothing (metrics off); ``Metrics`` records into a
registry of its own (never prometheus_client's global one) which
``MetricsServer`` serves in the Prometheus text format from a thread of
its own.  The loop only ever updates numbers in memory: a scrape, however
slow, never waits on the loop and the loop never waits on a scrape.

The exposition (text format, HTTP server) is prometheus_client's, not
hand-written: it is the reference implementation and keeps up with the
format.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:  # for hints only: no import cycle, and prometheus_client
    # loads only when metrics are on (Metrics, MetricsServer import it)
    from prometheus_client import CollectorRegistry

    from .config import Config
    from .source import Batch
    from .splitter import BatchStats

log = logging.getLogger("qsplit")

# the apply_batch actions counted per target queue ("already_applied" rows
# are a replay's, not events moved)
ACTIONS = ("inserted", "created", "skipped", "dead_letter")
# the batch steps timed, in loop order
STEPS = ("next_batch", "stream", "apply", "commits")
OTHER = "other"  # the label of the queues past metrics_top_queues
NULL_QUEUE = "(NULL)"  # the label of events whose routing value is NULL
# seconds: from a few milliseconds (small batches) to minutes (a batch of
# millions, or a batch waiting on a lock)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
           300.0, float("inf"))


class MetricsError(Exception):
    """The metrics server cannot start; the message is one line naming the key."""


class Observer:
    """The points of the batch loop that metrics watch.  This one records
    nothing: the driver runs with it when metrics_port is unset."""

    def connected(self) -> None:
        """Both connections were opened (the first time, or again)."""

    def begin(self) -> None:
        """next_batch is about to be called."""

    def taken(self, batch: Batch | None) -> None:
        """next_batch returned *batch* (None: nothing to do now)."""

    def step(self, name: str) -> None:
        """The step *name* of the batch in progress ended (one of STEPS)."""

    def done(self, stats: BatchStats, result: str | None = None) -> None:
        """The batch ended well: applied, skipped as already applied, or
        (*result* "left_to_another_driver") dropped for another driver."""

    def failed(self, kind: str, code: str | None = None) -> None:
        """The batch attempt failed: *kind* refused (the target refused it,
        *code* is the QS code), connection (a connection was lost or
        refused) or database (any other database error).  The batch stays
        open on the source."""

    def configure(self, config: Config) -> None:
        """The config was (re)loaded."""


class QueueLabels:
    """Bounded label values for target queue names: the first *limit*
    distinct names get a label of their own, later ones share ``other``.
    A stream with a new queue name in every event therefore makes at most
    limit + 2 label values (NULL has its own)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._own: set[str] = set()

    def label(self, queue_name: str | None) -> str:
        if not queue_name:
            return NULL_QUEUE
        if queue_name in self._own:
            return queue_name
        if len(self._own) < self.limit:
            self._own.add(queue_name)
            return queue_name
        return OTHER


class Metrics(Observer):
    """The driver's metrics, in a registry of their own."""

    def __init__(self, config: Config, clock=time.monotonic, wall_clock=time.time) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()  # guards the marks (the scrape thread reads them)
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.events = Counter(
            "qsplit_events", "Events moved into target queues (per queue and apply_batch action).",
            ["queue", "action"], registry=reg)
        self.batches = Counter(
            "qsplit_batches", "Batches ended well: applied, already_applied (a replay, skipped), "
            "left_to_another_driver.", ["result"], registry=reg)
        self.refused = Counter(
            "qsplit_batches_refused", "Batches the target refused (nothing applied, retried), by QS error code.",
            ["code"], registry=reg)
        self.errors = Counter(
            "qsplit_errors", "Batch attempts that failed other than by a refusal: kind connection (lost or "
            "refused connection) or database (any other database error).", ["kind"], registry=reg)
        self.reconnects = Counter(
            "qsplit_reconnects", "Connections opened again after the first (after an error, "
            "connection_lifetime, or a reload).", registry=reg)
        self.batch_duration = Histogram(
            "qsplit_batch_duration_seconds", "Seconds from next_batch to the source commit, per batch ended well.",
            buckets=BUCKETS, registry=reg)
        self.step_duration = Histogram(
            "qsplit_batch_step_duration_seconds", "Seconds per batch step: next_batch, stream (COPY out of the "
            "source into the target), apply (qsplit.apply_batch), commits (target commit, finish_batch, source "
            "commit).", ["step"], buckets=BUCKETS, registry=reg)
        self.lag = Gauge(
            "qsplit_source_lag_seconds", "Lag of the last batch taken: seconds from its end tick to when it was "
            "taken (source clock).", registry=reg)
        self.last_success = Gauge(
            "qsplit_last_batch_timestamp_seconds", "Unix time the last batch ended well (0: none yet).",
            registry=reg)
        self.since_success = Gauge(
            "qsplit_seconds_since_last_batch", "Seconds since the last batch ended well (or since the driver "
            "started, before the first).", registry=reg)
        self.open_batch = Gauge(
            "qsplit_batch_open", "1 while the driver holds a batch it has not finished: the source has events "
            "waiting for this consumer; 0 when next_batch found nothing to do.", registry=reg)
        self.loop_delay = Gauge(
            "qsplit_loop_delay_seconds", "The loop_delay key: seconds the loop sleeps when there is no batch.",
            registry=reg)
        self.build = Info("qsplit_build", "qsplit-driver version, consumer and source queue.", registry=reg)
        self._labels = QueueLabels(config.metrics_top_queues)
        self._connects = 0
        self._success_mark = self._started = self._mark = clock()
        self.since_success.set_function(self._seconds_since_success)
        # every series exists from the start (rate() needs a first sample);
        # the children are kept: labels() costs more than the update itself
        self._steps = {step: self.step_duration.labels(step=step) for step in STEPS}
        self._results = {r: self.batches.labels(result=r)
                         for r in ("applied", "already_applied", "left_to_another_driver")}
        self._events: dict[tuple[str, str], object] = {}  # bounded: QueueLabels x ACTIONS
        for kind in ("connection", "database"):
            self.errors.labels(kind=kind)
        self.configure(config)

    def _seconds_since_success(self) -> float:
        with self._lock:
            return self._clock() - self._success_mark

    # Observer ------------------------------------------------------------
    def configure(self, config: Config) -> None:
        self.loop_delay.set(config.loop_delay)
        self.build.info({"version": __version__, "consumer": config.consumer_name,
                         "source_queue": config.queue_name})
        self._labels.limit = config.metrics_top_queues

    def connected(self) -> None:
        self._connects += 1
        if self._connects > 1:
            self.reconnects.inc()

    def _lap(self) -> float:
        now = self._clock()
        elapsed, self._mark = now - self._mark, now
        return elapsed

    def begin(self) -> None:
        self._started = self._mark = self._clock()

    def taken(self, batch: Batch | None) -> None:
        if batch is None:
            self.open_batch.set(0)
            return
        self._steps["next_batch"].observe(self._lap())
        self.open_batch.set(1)
        self.lag.set(batch.lag)

    def step(self, name: str) -> None:
        self._steps[name].observe(self._lap())

    def done(self, stats: BatchStats, result: str | None = None) -> None:
        if result is None:
            result = "already_applied" if stats.already_applied else "applied"
        for queue in self._counted(stats):
            key = (self._labels.label(queue.queue_name), queue.action)
            child = self._events.get(key)
            if child is None:
                child = self._events[key] = self.events.labels(queue=key[0], action=key[1])
            child.inc(queue.n_events)
        self._results[result].inc()
        self.batch_duration.observe(self._clock() - self._started)
        self.open_batch.set(0)
        self.last_success.set(self._wall())
        with self._lock:
            self._success_mark = self._clock()

    @staticmethod
    def _counted(stats: BatchStats) -> Iterable:
        # biggest first: when labels run short, the big queues keep theirs
        rows = [q for q in stats.queues if q.action in ACTIONS and q.n_events]
        return sorted(rows, key=lambda q: -q.n_events)

    def failed(self, kind: str, code: str | None = None) -> None:
        if kind == "refused":
            self.refused.labels(code=code or "unknown").inc()
        else:
            self.errors.labels(kind=kind).inc()


class MetricsServer:
    """The HTTP server of a registry (prometheus_client's, in a daemon
    thread), started and stopped with the driver."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.addr: str | None = None
        self.port: int | None = None
        self._httpd = None
        self._thread: threading.Thread | None = None

    def start(self, addr: str, port: int) -> None:
        """Listen on *addr*:*port*; MetricsError (one line naming the keys)
        when that is not possible."""
        try:
            self._httpd, self._thread = _serve(addr, port, self.registry)
        except (OSError, ValueError) as exc:
            raise MetricsError(_listen_error(addr, port, exc)) from None
        self.addr, self.port = addr, port
        log.info("metrics: serving Prometheus metrics on http://%s/metrics", _hostport(addr, port))

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def reconfigure(self, addr: str, port: int | None) -> None:
        """After a reload: listen where the config now says.  When the new
        address cannot be used, the old one is kept and the error logged."""
        if (addr, port) == (self.addr, self.port):
            return
        if port is None:
            self.stop()
            self.addr = self.port = None
            log.info("metrics: metrics_port unset on reload: metrics server stopped")
            return
        old = self._httpd, self._thread, self.addr, self.port
        try:
            self._httpd, self._thread = _serve(addr, port, self.registry)
        except (OSError, ValueError) as exc:
            log.error("reload: %s; metrics stay on %s", _listen_error(addr, port, exc),
                      _hostport(self.addr, self.port) if self.port else "nothing")
            return
        self.addr, self.port = addr, port
        if old[0] is not None:
            old[0].shutdown()
            old[0].server_close()
            old[1].join(timeout=5)
        log.info("metrics: now serving on http://%s/metrics", _hostport(addr, port))


def _serve(addr: str, port: int, registry: CollectorRegistry):
    from prometheus_client import start_http_server

    return start_http_server(port, addr=addr, registry=registry)


def check_listen(addr: str, port: int) -> None:
    """Fail now (MetricsError) when *addr*:*port* cannot be listened on:
    daemon mode checks before it detaches, while the error still reaches
    the terminal and the exit status."""
    try:
        infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(1)
    except OSError as exc:
        raise MetricsError(_listen_error(addr, port, exc)) from None


def _hostport(addr: str | None, port: int | None) -> str:
    return f"[{addr}]:{port}" if addr and ":" in addr else f"{addr}:{port}"


def _listen_error(addr: str, port: int, exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc)
    return (f"metrics_port = {port}, metrics_addr = {addr}: cannot listen on {_hostport(addr, port)}: {reason}"
            " (choose a free port, or unset metrics_port)")
