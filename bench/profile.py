"""Where the target's time goes: qsplit's target half next to L's COPY into
one event table, on the same events (make bench-profile).

make bench measures how fast qsplit and L run; this says why the target
half costs what it costs.  The batches are read from a scratch source
queue first (through the driver's own Source, in the format the driver
would choose), then written into a scratch target database twice, each
time by one backend alone:

- L: COPY of the events (text) into one target event table, one COPY per
  batch, as make bench's L does;
- qsplit: per batch the COPY into the session's staging table, then
  qsplit.apply_batch and the commit, as the driver's loop does.

For each, per event: wall time, the backend's CPU (user and kernel, from
/proc), the WAL written meanwhile (pg_current_wal_insert_lsn before and
after: the whole server's, so run it on an otherwise idle server); with
``perf`` on the machine, the share of the backend's samples in the kernel
and its top functions; with ``strace``, the bytes the backend wrote, by
file kind (WAL, event tables, staging), in a pass of its own (strace
slows the backend down, so that pass is not timed).  Both tools are
optional: without one, its columns say so.

Counts (WAL bytes, bytes written) repeat from run to run; times do not:
compare ratios within one run.  The server must run on this machine (the
backend's CPU is read from /proc, perf and strace attach to it).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from cpu import process_seconds
from qsplit.source import Batch, Source
from qsplit.stream import copy_binary
from qsplit.target import Target
from workload import (
    Server,
    fill_queue,
    register_consumer_at,
    reset_target_queues,
    setup_databases,
    target_count,
    target_queue_names,
)

log = logging.getLogger("bench")
EVENT_COLUMNS = "ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4"


@dataclass
class Side:
    """What one backend did for one of the two writers."""

    name: str
    events: int = 0
    seconds: float = 0.0
    cpu_user_s: float = 0.0
    cpu_kernel_s: float = 0.0
    wal_bytes: int = 0
    perf: dict | None = None             # kernel share, top symbols
    written: Counter = field(default_factory=Counter)  # bytes by file kind (strace pass)
    traced: bool = False
    # qsplit only: of the above, apply_batch + the commit (the rest is the
    # COPY into staging), wall and backend CPU seconds
    apply_seconds: float | None = None
    apply_cpu_s: float | None = None


def _one_value(conn, query: str, args=None):
    with conn.cursor() as cur:
        cur.execute(query, args)
        (value,) = cur.fetchone()
    conn.commit()
    return value


class _Tool:
    """perf record or strace attached to one backend for a block."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # let it attach before the work starts

    def stop(self) -> None:
        self.proc.send_signal(2)  # SIGINT: both write their output and exit
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _perf_summary(data: Path, top: int) -> dict | None:
    def report(sort: str) -> list[tuple[float, str]]:
        done = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", sort],
                              capture_output=True, text=True)
        rows = []
        for line in done.stdout.splitlines():
            m = re.match(r"\s*([0-9.]+)%\s+(.*\S)", line)
            if m and not line.lstrip().startswith("#"):
                rows.append((float(m.group(1)), m.group(2)))
        return rows

    dsos = report("dso")
    if not dsos:
        return None
    kernel = sum(p for p, name in dsos if "kernel" in name)
    symbols = [(p, re.sub(r"\s+-\s+-\s*$", "", name)) for p, name in report("symbol")[:top]]
    return {"kernel_pct": kernel, "dsos": dsos[:4], "top": symbols}


def _strace_bytes(trace: Path) -> Counter:
    """Bytes written by file kind, from strace -y output."""
    out: Counter = Counter()
    for line in trace.read_text(errors="replace").splitlines():
        m = re.match(r"\w*write\w*\(\d+<([^>]*)>.*= (\d+)$", line)
        if not m:
            continue
        path, n = m.group(1), int(m.group(2))
        if "/pg_wal/" in path:
            kind = "WAL"
        elif re.search(r"/t\d+_\d+", path):
            kind = "staging (temp table)"
        elif "/base/" in path:
            kind = "event tables and indexes"
        else:
            kind = "other"
        out[kind] += n
    return out


class Profile:
    def __init__(self, args: argparse.Namespace, server: Server, workdir: Path) -> None:
        self.args = args
        self.server = server
        self.workdir = workdir
        self.perf = shutil.which("perf") if not args.no_perf else None
        self.strace = shutil.which("strace") if not args.no_strace else None

    # the batches, read once -------------------------------------------------
    def read_batches(self, queue, binary: bool) -> list[tuple[Batch, bytes]]:
        src = psycopg2.connect(self.server.dsn(self.args.src_db))
        try:
            register_consumer_at(self.server, self.args.src_db, queue, "profile")
            source = Source(src, queue.name, "profile")
            batches = []
            while True:
                batch = source.next_batch()
                source.commit()
                if batch is None:
                    return batches
                sink = io.BytesIO()
                source.copy_out(batch, sink, binary=binary)
                source.finish_batch(batch.batch_id)
                source.commit()
                batches.append((batch, sink.getvalue()))
        finally:
            src.close()

    # one pass of one writer -------------------------------------------------
    def run(self, side: Side, write, *, tool: str | None) -> None:
        """*write(conn, pid)* does the work on a fresh target connection (the
    backend's pid, for its CPU)."""
        conn = psycopg2.connect(self.server.dsn(self.args.dst_db))
        try:
            pid = _one_value(conn, "select pg_backend_pid()")
            prepare = getattr(write, "prepare", None)
            if prepare is not None:
                prepare(conn)
            self.server.checkpoint()
            attached = None
            out = self.workdir / f"{side.name}.{tool}"
            if tool == "perf":
                attached = _Tool([self.perf, "record", "-q", "-e", "cpu-clock", "-F", "999",
                                  "-p", str(pid), "-o", str(out)])
            elif tool == "strace":
                attached = _Tool([self.strace, "-q", "-y", "-e", "trace=write,pwrite64,pwritev,pwritev2",
                                  "-p", str(pid), "-o", str(out)])
            lsn0 = _one_value(conn, "select pg_current_wal_insert_lsn()")
            user0, kernel0 = process_seconds(pid)
            started = time.perf_counter()
            write(conn, pid)
            elapsed = time.perf_counter() - started
            user1, kernel1 = process_seconds(pid)
            wal = _one_value(conn, "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (lsn0,))
            if attached is not None:
                attached.stop()
            # counted after the clock stopped: every event arrived, once
            side.events = target_count(self.server, self.args.dst_db, write.names)
            if tool == "strace":
                side.written = _strace_bytes(out)
                side.traced = True
            else:
                side.seconds, side.wal_bytes = elapsed, int(wal)
                side.apply_seconds, side.apply_cpu_s = getattr(write, "apply", (None, None))
                side.cpu_user_s, side.cpu_kernel_s = user1 - user0, kernel1 - kernel0
                if tool == "perf":
                    side.perf = _perf_summary(out, self.args.top)
        finally:
            conn.close()


def limit_writer(server: Server, dst_db: str, batches: list[tuple[Batch, bytes]]):
    """L's half on the target: each batch's events COPied as text into one
    event table (the text is read back once from the source first)."""
    names = ["bench.limit"]
    texts: list[bytes] = []

    def prepare(conn) -> None:
        reset_target_queues(server, dst_db, names)

    def write(conn, pid: int) -> None:
        table = _one_value(conn, "select pgq.current_event_table('bench.limit')")
        with conn.cursor() as cur:
            for data in texts:
                cur.copy_expert(f"copy {table} ({EVENT_COLUMNS}) from stdin", io.BytesIO(data))
                conn.commit()

    write.prepare = prepare  # type: ignore[attr-defined]
    write.names = names  # type: ignore[attr-defined]
    return write, texts


def qsplit_writer(server: Server, dst_db: str, batches: list[tuple[Batch, bytes]], binary: bool, consumer: str):
    names = target_queue_names()

    def prepare(conn) -> None:
        reset_target_queues(server, dst_db, names)
        target = Target(conn)
        target.prepare()
        target.commit()

    def write(conn, pid: int) -> None:
        target = Target(conn)
        wall = cpu = 0.0
        for batch, data in batches:
            target.copy_in(io.BytesIO(data), binary)
            started, used = time.perf_counter(), sum(process_seconds(pid))
            target.apply_batch(consumer, batch, "extra1")
            target.commit()
            wall += time.perf_counter() - started
            cpu += sum(process_seconds(pid)) - used
        write.apply = (wall, cpu)  # type: ignore[attr-defined]

    write.prepare = prepare  # type: ignore[attr-defined]
    write.names = names  # type: ignore[attr-defined]
    return write


def limit_texts(server: Server, src_db: str, queue_name: str, batch_size: int) -> list[bytes]:
    """The source events as L's COPY text, cut into batches of *batch_size*."""
    conn = psycopg2.connect(server.dsn(src_db))
    try:
        table = _one_value(conn, "select queue_data_pfx from pgq.queue where queue_name = %s", (queue_name,))
        buf = io.BytesIO()
        with conn.cursor() as cur:
            cur.copy_expert(f"copy (select {EVENT_COLUMNS} from {table} order by ev_id) to stdout", buf)
        conn.commit()
    finally:
        conn.close()
    lines = buf.getvalue().splitlines(keepends=True)
    return [b"".join(lines[i:i + batch_size]) for i in range(0, len(lines), batch_size)]


def table(sides: list[Side]) -> str:
    out = ["| writer | events | wall µs/event | backend CPU µs/event (user + kernel) | kernel share "
           "| WAL bytes/event | bytes written/event (strace) |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for s in sides:
        cpu = (s.cpu_user_s + s.cpu_kernel_s) / s.events * 1e6
        share = f"{s.perf['kernel_pct']:.0f}% (perf)" if s.perf else (
            f"{s.cpu_kernel_s / max(s.cpu_user_s + s.cpu_kernel_s, 1e-9):.0%} (/proc)")
        written = ", ".join(f"{k} {v / s.events:.0f}" for k, v in s.written.most_common()) if s.traced else "no strace"
        out.append(f"| {s.name} | {s.events:,} | {s.seconds / s.events * 1e6:.2f} | {cpu:.2f} "
                   f"({s.cpu_user_s / s.events * 1e6:.2f} + {s.cpu_kernel_s / s.events * 1e6:.2f}) | {share} "
                   f"| {s.wal_bytes / s.events:.0f} | {written} |")
    for s in sides:
        if s.apply_seconds is not None:
            out.append(f"\n{s.name}: of which apply_batch + commit {s.apply_seconds / s.events * 1e6:.2f} µs/event "
                       f"wall, {s.apply_cpu_s / s.events * 1e6:.2f} µs/event backend CPU; the COPY into staging "
                       f"the rest")
    for s in sides:
        if s.perf:
            out.append(f"\n{s.name}: top functions of the backend (perf, % of its samples): "
                       + "; ".join(f"{name} {pct:.1f}" for pct, name in s.perf["top"]))
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.environ.get("QSPLIT_BENCH_SERVER", "host=127.0.0.1"))
    p.add_argument("--src-db", default="qsplit_profile_src")
    p.add_argument("--dst-db", default="qsplit_profile_dst")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch-size", type=int, default=10_000)
    p.add_argument("--top", type=int, default=12, help="functions listed per writer (perf)")
    p.add_argument("--no-perf", action="store_true")
    p.add_argument("--no-strace", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    server = Server(args.server)
    if server.postmaster_pid() is None:
        raise SystemExit(f"bench-profile: the server {args.server!r} is not on this machine (its data directory "
                         "is not readable here): the profile reads its backends' CPU from /proc")
    made: list[tuple[Server, str]] = []
    try:
        setup_databases(server, args.src_db, [(server, args.dst_db)], made)
        queue = fill_queue(server, args.src_db, "profile_q", args.events, args.batch_size)
        probe = psycopg2.connect(server.dsn(args.dst_db))
        binary = copy_binary(probe.server_version, probe.server_version)
        probe.close()
        with tempfile.TemporaryDirectory(prefix="qsplit-profile-") as tmp:
            prof = Profile(args, server, Path(tmp))
            batches = prof.read_batches(queue, binary)
            l_write, texts = limit_writer(server, args.dst_db, batches)
            texts.extend(limit_texts(server, args.src_db, queue.name, args.batch_size))
            sides = [Side("L (COPY text into one event table)"),
                     Side(f"qsplit ({'binary' if binary else 'text'} COPY into staging + apply_batch + commit)")]
            tool = "perf" if prof.perf else None
            prof.run(sides[0], l_write, tool=tool)
            prof.run(sides[1], qsplit_writer(server, args.dst_db, batches, binary, "profile_a"), tool=tool)
            if prof.strace:
                prof.run(sides[0], l_write, tool="strace")
                prof.run(sides[1], qsplit_writer(server, args.dst_db, batches, binary, "profile_b"), tool="strace")
        print(f"{args.events:,} events in batches of {args.batch_size:,} into "
              f"{len(target_queue_names())} target queues (qsplit) or one (L), one backend each, server "
              f"{args.server!r}; perf: {'yes' if prof.perf else 'not found'}, strace: "
              f"{'yes' if prof.strace else 'not found'}\n")
        print(table(sides))
    finally:
        for srv, db in made:
            srv.drop_database(db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
