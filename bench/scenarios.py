"""One function per measurement.  Each returns a dict of figures for one
run; every run checks that the events it moved all arrived."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

import original
from cpu import CpuMeter
from phases import PhaseTimer
from qsplit.config import load
from qsplit.source import Batch, Source
from qsplit.splitter import Splitter
from qsplit.stream import copy_binary
from qsplit.target import Target
from workload import (
    Server,
    SourceQueue,
    register_consumer_at,
    reset_target_queues,
    target_count,
    target_queue_names,
    tick,
)

log = logging.getLogger("bench")

# the console script a DBA runs, next to this interpreter in the venv
DRIVER = Path(sys.executable).parent / "qsplit-driver"
LAUNCH = Path(__file__).resolve().parent / "launch.py"
EVENT_COLUMNS = "ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4"


@dataclass(frozen=True)
class Context:
    """Where one mode runs: the source database on *src*, the target
    database on *dst* (the same server in the one-server mode, a second
    cluster in the two-server mode)."""

    src: Server
    dst: Server
    src_db: str
    dst_db: str
    workdir: Path
    mode: str = "one"
    postmasters: tuple[int, ...] = ()  # this mode's local servers, for the CPU meter

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter(list(self.postmasters))

    @property
    def src_dsn(self) -> str:
        return self.src.dsn(self.src_db)

    @property
    def dst_dsn(self) -> str:
        return self.dst.dsn(self.dst_db)

    def checkpoint(self) -> None:
        self.src.checkpoint()
        if self.dst != self.src:
            self.dst.checkpoint()

    def write_ini(self, name: str, queue: str, consumer: str, **extra: str) -> Path:
        keys = {
            "job_name": name,
            "src_db": self.src_dsn,
            "dst_db": self.dst_dsn,
            "pgq_queue_name": queue,
            "pgq_consumer_id": consumer,
            "logfile": str(self.workdir / "log" / f"{name}.log"),
        }
        keys.update(extra)
        path = self.workdir / f"{name}.ini"
        path.write_text("[queue_splitter]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
        return path


class BenchError(Exception):
    """A run did not move what it should have: its figures are void."""


def _check_arrived(ctx: Context, expected: int, names: list[str]) -> None:
    got = target_count(ctx.dst, ctx.dst_db, names)
    if got != expected:
        raise BenchError(f"{expected} events sent, {got} arrived in the target queues")


# the limit L ----------------------------------------------------------------
def limit(ctx: Context, queue: SourceQueue) -> dict:
    """psql COPY TO STDOUT on the source piped into psql COPY FROM STDIN of
    one target event table: what PostgreSQL itself moves, no routing."""
    names = ["bench.limit"]
    reset_target_queues(ctx.dst, ctx.dst_db, names)
    (src_table,) = ctx.src.execute(
        ctx.src_db, "select queue_data_pfx from pgq.queue where queue_name = %s", (queue.name,)
    )[0]
    (dst_table,) = ctx.dst.execute(ctx.dst_db, "select pgq.current_event_table('bench.limit')")[0]
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    out_cmd = psql + ["-d", ctx.src_dsn, "-c", f"copy (select {EVENT_COLUMNS} from {src_table}) to stdout"]
    in_cmd = psql + ["-d", ctx.dst_dsn, "-c", f"copy {dst_table} ({EVENT_COLUMNS}) from stdin"]
    ctx.checkpoint()
    meter = ctx.cpu_meter()
    meter.start()
    started = time.perf_counter()
    out = subprocess.Popen(out_cmd, stdout=subprocess.PIPE)
    into = subprocess.Popen(in_cmd, stdin=out.stdout)
    assert out.stdout is not None
    out.stdout.close()
    if into.wait() != 0 or out.wait() != 0:
        raise BenchError("the psql COPY pipe failed")
    elapsed = time.perf_counter() - started
    cpu = meter.stop()
    _check_arrived(ctx, queue.n_events, names)
    return {"events": queue.n_events, "seconds": elapsed, "events_per_s": queue.n_events / elapsed,
            **_cpu_figures(cpu, queue.n_events)}


# qsplit through the Splitter loop, in this process ---------------------------
def splitter_run(ctx: Context, queue: SourceQueue, consumer: str, phases: bool = False,
                 read_ahead: bool = True) -> dict:
    """Every batch of *queue* through Splitter.run(once=True), the loop of
    qsplit-driver --once, timed from the first next_batch to the last commit
    (connections are opened before the clock starts, as in a running daemon).
    *read_ahead*: the ini's read_ahead.  With *phases*, also the seconds
    spent in each step of the loop."""
    names = target_queue_names()
    reset_target_queues(ctx.dst, ctx.dst_db, names)
    register_consumer_at(ctx.src, ctx.src_db, queue, consumer)
    splitter = Splitter(load(ctx.write_ini(consumer, queue.name, consumer, read_ahead="1" if read_ahead else "0")))
    splitter.connect()
    timer = PhaseTimer()
    if phases:
        timer.attach(splitter)
    ctx.checkpoint()
    meter = ctx.cpu_meter()
    meter.start()
    started = time.perf_counter()
    rc = splitter.run(once=True)
    elapsed = time.perf_counter() - started
    cpu = meter.stop()
    if rc != 0:
        raise BenchError(f"Splitter.run returned {rc}; see {ctx.workdir / 'log'}")
    _check_arrived(ctx, queue.n_events, names)
    return {
        "events": queue.n_events,
        "batches": queue.n_batches,
        "seconds": elapsed,
        "events_per_s": queue.n_events / elapsed,
        **_cpu_figures(cpu, queue.n_events),
        **({"phases_s": timer.figures()} if phases else {}),
    }


# the original's algorithm on python-pgq's SerialConsumer ----------------------
def original_run(ctx: Context, queue: SourceQueue, consumer: str) -> dict:
    """Every batch of *queue* through the bench's queue_splitter peer
    (bench/original.py), timed like splitter_run: connections opened
    before the clock starts, from the first batch to the last commit."""
    names = target_queue_names()
    reset_target_queues(ctx.dst, ctx.dst_db, names)
    register_consumer_at(ctx.src, ctx.src_db, queue, consumer)
    ini = original.write_ini(ctx.workdir / f"{consumer}.ini", ctx.src_dsn, ctx.dst_dsn, queue.name, consumer,
                             ctx.workdir / "log" / f"{consumer}.log")
    peer = original.Original(ini)
    try:
        peer.connect()
        ctx.checkpoint()
        meter = ctx.cpu_meter()
        meter.start()
        started = time.perf_counter()
        batches = peer.run()
        elapsed = time.perf_counter() - started
    finally:
        peer.close()
    cpu = meter.stop()
    if batches != queue.n_batches:
        raise BenchError(f"the original moved {batches} batches of {queue.n_batches}; see {ctx.workdir / 'log'}")
    _check_arrived(ctx, queue.n_events, names)
    return {"events": queue.n_events, "batches": batches, "seconds": elapsed, "events_per_s": queue.n_events / elapsed,
            **_cpu_figures(cpu, queue.n_events)}


def _cpu_figures(cpu: dict[str, float], events: int) -> dict[str, float]:
    """The CPU meter's seconds, and per event in microseconds (client:
    this process and its children; server: the PostgreSQL servers)."""
    return {**cpu, "cpu_us_per_event": cpu["cpu_s"] / events * 1e6,
            "cpu_client_us_per_event": cpu["cpu_client_s"] / events * 1e6}


# each half of a run on its own: the profile of what bounds qsplit / L -------
def halves(ctx: Context, queue: SourceQueue, consumer: str) -> dict:
    """Each side of L and of qsplit, timed alone, with the server CPU it
    takes: L's COPY out of the source event table and its COPY into one
    target event table; qsplit's source half (per batch: pgq.next_batch,
    the driver's COPY out of the batch, pgq.finish_batch, the commits) and
    its target half (per batch: the COPY into staging, qsplit.apply_batch,
    the commit), through the driver's own Source and Target classes.  The
    COPY text goes through this process's memory between the halves.

    Then the target half once more as read-ahead overlaps it (the next
    batch's COPY into a second session while one is applied), from the
    batches in memory: qsplit's pace when the source half runs on cores of
    its own, as with a source server of its own.

    What the figures bound (report.summarize works the bounds out against
    the L run of the same round): a run takes at least its slowest part,
    so qsplit / L cannot pass L's time / max(qsplit's source half, its
    COPYs into staging, its applies and commits) (read-ahead runs those
    three at once), nor L's time / (qsplit's CPU spread over every core)."""
    out: dict = {"events": queue.n_events, "batches": queue.n_batches}

    # L: the two ends of the psql pipe, one after the other
    names = ["bench.limit"]
    reset_target_queues(ctx.dst, ctx.dst_db, names)
    (src_table,) = ctx.src.execute(
        ctx.src_db, "select queue_data_pfx from pgq.queue where queue_name = %s", (queue.name,))[0]
    (dst_table,) = ctx.dst.execute(ctx.dst_db, "select pgq.current_event_table('bench.limit')")[0]
    src, dst = psycopg2.connect(ctx.src_dsn), psycopg2.connect(ctx.dst_dsn)
    try:
        buf = io.BytesIO()
        with _timed(ctx, out, "limit_out", queue.n_events), src.cursor() as cur:
            cur.copy_expert(f"copy (select {EVENT_COLUMNS} from {src_table}) to stdout", buf)
        src.commit()
        buf.seek(0)
        with _timed(ctx, out, "limit_in", queue.n_events), dst.cursor() as cur:
            cur.copy_expert(f"copy {dst_table} ({EVENT_COLUMNS}) from stdin", buf)
            dst.commit()
        del buf
        _check_arrived(ctx, queue.n_events, names)

        # qsplit: the driver's steps, source half then target half
        names = target_queue_names()
        reset_target_queues(ctx.dst, ctx.dst_db, names)
        register_consumer_at(ctx.src, ctx.src_db, queue, consumer)
        source, target = Source(src, queue.name, consumer), Target(dst)
        binary = copy_binary(src.server_version, dst.server_version)  # as the driver chooses
        target.prepare()
        target.commit()
        staged: list[tuple[Batch, bytes]] = []
        with _timed(ctx, out, "qsplit_source", queue.n_events):
            while True:
                batch = source.next_batch()
                source.commit()
                if batch is None:
                    break
                sink = io.BytesIO()
                source.copy_out(batch, sink, binary=binary)
                source.finish_batch(batch.batch_id)
                source.commit()
                staged.append((batch, sink.getvalue()))
        staging = 0.0  # of which the COPYs into staging: read-ahead overlaps them with the applies
        with _timed(ctx, out, "qsplit_target", queue.n_events):
            for batch, data in staged:
                started = time.perf_counter()
                target.copy_in(io.BytesIO(data), binary)
                staging += time.perf_counter() - started
                target.apply_batch(consumer, batch, "extra1")
                target.commit()
        out["qsplit_target_staging_seconds"] = staging
        out["qsplit_target_apply_seconds"] = out["qsplit_target_seconds"] - staging
        _check_arrived(ctx, queue.n_events, names)

        # the target half as read-ahead runs it (batch N+1 COPied into a
        # second session's staging while N is applied), the batches coming
        # from memory: what qsplit does when the source half runs on cores
        # of its own (a source server of its own; the driver's relaying is
        # left out too)
        reset_target_queues(ctx.dst, ctx.dst_db, names)
        second = psycopg2.connect(ctx.dst_dsn)
        try:
            sessions = (target, Target(second))
            sessions[1].prepare()
            sessions[1].commit()
            with _timed(ctx, out, "qsplit_target_pipelined", queue.n_events):
                sessions[0].copy_in(io.BytesIO(staged[0][1]), binary)
                for i, (batch, _) in enumerate(staged):
                    ahead = None
                    if i + 1 < len(staged):
                        ahead = threading.Thread(target=sessions[(i + 1) % 2].copy_in,
                                                 args=(io.BytesIO(staged[i + 1][1]), binary))
                        ahead.start()
                    sessions[i % 2].apply_batch(consumer + "_p", batch, "extra1")
                    sessions[i % 2].commit()
                    if ahead is not None:
                        ahead.join()
        finally:
            second.close()
        del staged
        _check_arrived(ctx, queue.n_events, names)
    finally:
        src.close()
        dst.close()
    return out


@contextlib.contextmanager
def _timed(ctx: Context, out: dict, name: str, events: int):
    """Wall seconds and CPU (this process + the servers) of the block, into
    out[name + "_seconds"], out[name + "_cpu_us_per_event"]."""
    ctx.checkpoint()
    meter = ctx.cpu_meter()
    meter.start()
    started = time.perf_counter()
    yield
    out[f"{name}_seconds"] = time.perf_counter() - started
    cpu = meter.stop()
    out[f"{name}_cpu_us_per_event"] = cpu["cpu_s"] / events * 1e6
    out[f"{name}_cpu_server_us_per_event"] = cpu["cpu_server_s"] / events * 1e6


# one big batch through the console script ------------------------------------
def big_batch(ctx: Context, queue: SourceQueue, consumer: str) -> dict:
    """qsplit-driver --once on a single batch of every event of *queue*, as
    a child process: wall time (process start to exit) and the driver's
    own peak RSS (wait4, through launch.py)."""
    names = target_queue_names()
    reset_target_queues(ctx.dst, ctx.dst_db, names)
    register_consumer_at(ctx.src, ctx.src_db, queue, consumer)
    ini = ctx.write_ini(consumer, queue.name, consumer)
    ctx.checkpoint()
    done = subprocess.run([sys.executable, str(LAUNCH), str(DRIVER), "--once", str(ini)],
                          stdout=subprocess.PIPE, text=True, check=True)
    child = json.loads(done.stdout)
    if child["exit"] != 0:
        raise BenchError(f"qsplit-driver exited with {child['exit']}; see {ctx.workdir / 'log'}")
    elapsed = child["seconds"]
    _check_arrived(ctx, queue.n_events, names)
    return {
        "events": queue.n_events,
        "seconds": elapsed,
        "events_per_s": queue.n_events / elapsed,
        "peak_rss_mib": child["maxrss_kib"] / 1024,  # Linux reports KiB
    }


# a naive consumer: pgq.insert_event per event --------------------------------
def per_event(ctx: Context, queue: SourceQueue, consumer: str, n_events: int) -> dict:
    """Read batches with pgq.get_batch_events and call pgq.insert_event on
    the target once per event, until *n_events* are moved."""
    names = target_queue_names()
    reset_target_queues(ctx.dst, ctx.dst_db, names)
    register_consumer_at(ctx.src, ctx.src_db, queue, consumer)
    src = psycopg2.connect(ctx.src_dsn)
    dst = psycopg2.connect(ctx.dst_dsn)
    moved = 0
    try:
        with src.cursor() as scur, dst.cursor() as dcur:
            ctx.checkpoint()
            started = time.perf_counter()
            while moved < n_events:
                scur.execute("select pgq.next_batch(%s, %s)", (queue.name, consumer))
                (batch_id,) = scur.fetchone()
                src.commit()
                if batch_id is None:
                    break
                scur.execute(
                    "select ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4"
                    " from pgq.get_batch_events(%s)",
                    (batch_id,),
                )
                for ev_type, ev_data, x1, x2, x3, x4 in scur.fetchall()[: n_events - moved]:
                    dcur.execute("select pgq.insert_event(%s, %s, %s, %s, %s, %s, %s)", (x1, ev_type, ev_data, x1, x2, x3, x4))
                    moved += 1
                dst.commit()
                scur.execute("select pgq.finish_batch(%s)", (batch_id,))
                src.commit()
            elapsed = time.perf_counter() - started
    finally:
        src.close()
        dst.close()
    _check_arrived(ctx, moved, names)
    return {"events": moved, "seconds": elapsed, "events_per_s": moved / elapsed}


# latency --------------------------------------------------------------------
class _PositionWatch(threading.Thread):
    """Poll the consumer's target position; remember when each tick was
    first seen applied (events and position commit together)."""

    def __init__(self, dsn: str, consumer: str, interval: float) -> None:
        super().__init__(name="bench-position-watch", daemon=True)
        self.dsn, self.consumer, self.interval = dsn, consumer, interval
        self.seen: list[tuple[int, float]] = []  # (last_tick_id, monotonic time), increasing
        self.stop = threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                last = None
                while not self.stop.is_set():
                    cur.execute("select last_tick_id from qsplit.consumer where consumer_name = %s", (self.consumer,))
                    row = cur.fetchone()
                    now = time.monotonic()
                    if row and row[0] is not None and row[0] != last:
                        last = row[0]
                        self.seen.append((last, now))
                    time.sleep(self.interval)
        finally:
            conn.close()

    def applied_at(self, tick_id: int) -> float | None:
        for tick, at in self.seen:
            if tick >= tick_id:
                return at
        return None


def latency(ctx: Context, queue: SourceQueue, consumer: str, seconds: float, rate: float = 200.0,
            tick_every: float = 0.05, loop_delay: float = 0.1, poll: float = 0.002) -> dict:
    """A qsplit-driver daemon (loop_delay 0.1) follows a live source queue:
    one event every 1/rate s, a tick every *tick_every* s.  For each event:
    source commit -> the tick that closes its batch -> visible in its target
    queue.  Reports the time after the tick (the driver's share) and the
    whole commit-to-visible time, p50 and p99, in ms."""
    names = target_queue_names()
    reset_target_queues(ctx.dst, ctx.dst_db, names)
    # at the queue's last tick: earlier runs' events are not this run's
    ctx.src.execute(ctx.src_db, "select pgq.register_consumer(%s, %s)", (queue.name, consumer))
    ini = ctx.write_ini(consumer, queue.name, consumer, loop_delay=str(loop_delay))
    watch = _PositionWatch(ctx.dst_dsn, consumer, poll)
    driver = subprocess.Popen([str(DRIVER), str(ini)])
    src = psycopg2.connect(ctx.src_dsn)
    src.autocommit = True
    events: list[tuple[float, int]] = []   # (commit time, tick index)
    ticks: list[tuple[int, float]] = []    # (tick_id, commit time)
    try:
        watch.start()
        with src.cursor() as cur:
            first = tick(cur, queue.name)
            _wait_for(lambda: watch.applied_at(first) is not None, 30, "the driver to apply its first batch")
            interval = 1.0 / rate
            started = time.monotonic()
            next_event = next_tick = started
            pending = 0
            n = 0
            while True:
                now = time.monotonic()
                if now - started >= seconds:
                    break
                if now >= next_tick:
                    ticks.append((tick(cur, queue.name), time.monotonic()))
                    _assign(events, pending, len(ticks) - 1)
                    pending = 0
                    next_tick += tick_every
                if now >= next_event:
                    n += 1
                    cur.execute(
                        "select pgq.insert_event(%s, 'I:id', %s, %s, null, null, null)",
                        (queue.name, f"id={n}&status=paid&amount={n % 1000}.00", f"bench.q{1 + n % len(names):02d}"),
                    )
                    events.append((time.monotonic(), -1))
                    pending += 1
                    next_event += interval
                time.sleep(max(0.0, min(next_event, next_tick) - time.monotonic()))
            ticks.append((tick(cur, queue.name), time.monotonic()))
            _assign(events, pending, len(ticks) - 1)
            last_tick = ticks[-1][0]
            _wait_for(lambda: watch.applied_at(last_tick) is not None, 30, "the driver to catch up")
    finally:
        watch.stop.set()
        src.close()
        driver.send_signal(signal.SIGINT)
        try:
            driver.wait(timeout=15)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        watch.join()
    _check_arrived(ctx, len(events), names)
    after_tick, total = [], []
    for committed, tick_index in events:
        tick_id, ticked = ticks[tick_index]
        visible = watch.applied_at(tick_id)
        assert visible is not None
        after_tick.append(visible - ticked)
        total.append(visible - committed)
    return {
        "events": len(events),
        "ticks": len(ticks),
        "loop_delay_ms": loop_delay * 1000,
        "tick_every_ms": tick_every * 1000,
        "poll_ms": poll * 1000,
        "p50_ms": _percentile(after_tick, 50) * 1000,
        "p99_ms": _percentile(after_tick, 99) * 1000,
        "max_ms": max(after_tick) * 1000,
        "commit_to_visible_p50_ms": _percentile(total, 50) * 1000,
        "commit_to_visible_p99_ms": _percentile(total, 99) * 1000,
    }


def _assign(events: list[tuple[float, int]], pending: int, tick_index: int) -> None:
    """The last *pending* events were committed before tick *tick_index*."""
    for i in range(len(events) - pending, len(events)):
        events[i] = (events[i][0], tick_index)


def _wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]
