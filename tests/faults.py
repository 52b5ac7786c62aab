"""Helpers for the fault tests and the soak: queues and a producer on the
source, the real driver as a long-running process (killed, restarted,
its connections terminated), and the exactly-once check on the target."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql

from helpers import DRIVER, EVENT_FIELDS, Cluster, run_sql, _queue_events_sql

SOURCE_QUEUE = "singlequeue"
ROUTE_INDEX = EVENT_FIELDS.index("ev_extra1")


def create_queues(cluster: Cluster, targets: list[str], source: str = SOURCE_QUEUE) -> None:
    cluster.src_exec("select pgq.create_queue(%s)", (source,))
    for q in targets:
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))


def produce_batch(cluster: Cluster, targets: list[str], n: int, start: int, pad: int = 0,
                  tick: bool = True) -> None:
    """*n* events through pgq.insert_event spread round-robin over *targets*
    (numbered from *start*, ev_data padded by *pad* bytes), then a tick."""
    cluster.src_exec(
        "select pgq.insert_event(%s, 'ev', 'n=' || i || '&pad=' || repeat('x', %s),"
        "       (%s::text[])[1 + i %% %s], 'x2=' || i, NULL, 'x4')"
        "  from generate_series(%s, %s) i",
        (SOURCE_QUEUE, pad, list(targets), len(targets), start, start + n - 1),
    )
    if tick:
        cluster.tick(SOURCE_QUEUE)


def produce_bulk(cluster: Cluster, targets: list[str], n: int) -> None:
    """*n* events straight into the source queue's current event table (the
    ticker sees its sequence), in one statement: a fast way to a huge batch."""
    conn = psycopg2.connect(cluster.src_dsn)
    try:
        with conn.cursor() as cur:
            # the table name comes back quoted by the server (regclass)
            cur.execute("select pgq.current_event_table(%s)::regclass::text", (SOURCE_QUEUE,))
            (table,) = cur.fetchone()
            cur.execute(
                sql.SQL(
                    "insert into {} (ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)"
                    " select now(), 'bulk', 'n=' || i || '&v=' || md5(i::text), (%s::text[])[1 + i %% %s],"
                    "        'x2=' || i, NULL, 'x4' from generate_series(1, %s) i"
                ).format(sql.SQL(table)),
                (list(targets), len(targets), n),
            )
        conn.commit()
    finally:
        conn.close()


# the expected content ---------------------------------------------------------
@dataclass
class Ledger:
    """The source events as they were produced, kept by ev_id, so the check
    still has them after a rotation truncated the source event tables."""

    events: dict[int, tuple] = field(default_factory=dict)

    def record(self, cluster: Cluster) -> None:
        last = max(self.events, default=0)
        for row in cluster.source_events():
            if row[0] > last:
                self.events[row[0]] = row[1:]

    def by_queue(self) -> dict[str, list[tuple]]:
        out: dict[str, list[tuple]] = collections.defaultdict(list)
        for ev_id in sorted(self.events):
            ev = self.events[ev_id]
            out[ev[ROUTE_INDEX]].append(ev)
        return out


def expected_by_queue(cluster: Cluster) -> dict[str, list[tuple]]:
    ledger = Ledger()
    ledger.record(cluster)
    return ledger.by_queue()


def diff_counts(expected: list, got: list) -> tuple[int, int]:
    """(lost, duplicated) between two multisets of events."""
    want, have = collections.Counter(expected), collections.Counter(got)
    return sum((want - have).values()), sum((have - want).values())


def assert_exactly_once(cluster: Cluster, targets: list[str], expected: dict[str, list[tuple]] | None = None,
                        got: dict[str, list[tuple]] | None = None) -> int:
    """Every target queue holds exactly its source events, every field, in
    source order.  Returns the number of events checked."""
    expected = expected if expected is not None else expected_by_queue(cluster)
    assert set(expected) <= set(targets), f"events for unknown queues {set(expected) - set(targets)}"
    total = 0
    for q in targets:
        want = expected.get(q, [])
        have = got[q] if got is not None else cluster.target_events(q)
        lost, dup = diff_counts(want, have)
        assert (lost, dup) == (0, 0), f"queue {q!r}: {lost} event(s) lost, {dup} duplicated"
        assert have == want, f"queue {q!r}: same events, but not in source order"
        total += len(have)
    return total


def event_table(dsn: str, queue: str) -> str:
    """The parent event table of *queue* (all its rotating tables), as a
    name quoted by the server."""
    select = _queue_events_sql(dsn, queue)
    return select.split(" from ", 1)[1].split(" order by ", 1)[0]


def queue_digests(dsn: str, queue: str, by_route: bool = False) -> dict[str | None, tuple[int, str]]:
    """{route or None: (count, md5 over every field of every event in ev_id
    order)}, computed on the server, so a million events are compared without
    fetching them.  *by_route* groups by ev_extra1 (the source queue)."""
    fields = ", ".join(EVENT_FIELDS)
    group = "ev_extra1" if by_route else "NULL::text"
    rows = run_sql(
        dsn,
        f"select {group}, count(*), md5(string_agg(md5(row({fields})::text), '' order by ev_id))"
        f"  from {event_table(dsn, queue)} group by 1",
    )
    return {r[0]: (r[1], r[2]) for r in rows}


# the state of the consumer ------------------------------------------------------
def open_batches(cluster: Cluster, consumer: str = "test_splitter") -> int:
    return cluster.src_exec(
        "select count(*) from pgq.get_consumer_info(%s, %s) where current_batch is not null",
        (SOURCE_QUEUE, consumer),
    )[0][0]


def drained(cluster: Cluster, consumer: str = "test_splitter") -> bool:
    """The consumer has finished every batch up to the queue's last tick."""
    rows = cluster.src_exec(
        "select c.last_tick = q.last_tick_id and c.current_batch is null"
        "  from pgq.get_consumer_info(%s, %s) c, pgq.get_queue_info(%s) q",
        (SOURCE_QUEUE, consumer, SOURCE_QUEUE),
    )
    return bool(rows and rows[0][0])


def wait_until(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except psycopg2.OperationalError:
            pass  # the server may be restarting
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def driver_backends(cluster: Cluster, side: str, job_name: str = "test_splitter") -> list[int]:
    """Backend pids of the driver's connections to one side ('src' or 'dst')."""
    dsn = cluster.src_dsn if side == "src" else cluster.dst_dsn
    return [
        pid
        for (pid,) in run_sql(
            dsn,
            "select pid from pg_stat_activity where application_name = %s and datname = current_database()",
            (f"qsplit-driver {job_name}",),
        )
    ]


def terminate_backends(cluster: Cluster, pids: list[int], side: str = "src") -> int:
    """Terminate backends *pids* of one side's server ('src' or 'dst')."""
    run = cluster.src_exec if side == "src" else cluster.dst_exec
    killed = 0
    for pid in pids:
        killed += bool(run("select pg_terminate_backend(%s)", (pid,))[0][0])
    return killed


# the driver as a long-running process ----------------------------------------------
class DriverProcess:
    """The real qsplit-driver, running in the foreground (no --once) until
    stopped or killed; its stderr goes to a file in the work directory."""

    def __init__(self, ini: Path, workdir: Path, *, args: tuple[str, ...] = (), env: dict | None = None) -> None:
        full_env = dict(os.environ)
        full_env.pop("QSPLIT_FAILPOINT", None)
        full_env.update(env or {})
        self.stderr_path = workdir / f"driver-stderr-{time.monotonic_ns()}.txt"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(DRIVER + list(args) + [str(ini)], stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, env=full_env, cwd=workdir)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, like a power cut."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.wait()

    def stop(self, timeout: float = 10) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.returncode is not None:
                self._stderr.close()

    def peak_rss_kib(self) -> int | None:
        """VmHWM of the running driver (None once it has exited).  Not
        ru_maxrss: Linux carries the forking parent's peak into it."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    def wait_watching_rss(self, timeout: float, interval: float = 0.02) -> tuple[int, int]:
        """Wait for the driver to exit, sampling its peak RSS all along:
        (exit code, highest VmHWM seen, KiB)."""
        deadline = time.monotonic() + timeout
        peak = 0
        while self.proc.poll() is None:
            peak = max(peak, self.peak_rss_kib() or 0)
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.proc.args, timeout)
            time.sleep(interval)
        return self.wait(), peak

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")
