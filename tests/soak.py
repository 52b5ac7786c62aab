"""Soak: a producer inserting rows continuously through pgq.logutriga, pgqd
ticking, the driver in daemon mode (-d) killed with SIGKILL at random
intervals and restarted;
then a full comparison of the source queue with the target queues.

    make soak                      # 5 minutes
    SOAK_SECONDS=60 make soak      # shorter
    python tests/soak.py --seconds 60 --seed 7

Prints events produced, moved, lost, duplicated and the kills survived; exits
1 when anything was lost, doubled or reordered.  Uses (drops and re-creates,
and leaves for a look afterwards) the databases <--prefix>_soak_src / _soak_dst
on the local server (PGPORT).  tests/test_soak.py runs a short version inside
make test.  The test toolkit (helpers.py) does the set-up and the checks.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import (EVENT_FIELDS, Cluster, diff_counts, drained, install_qsplit, process_alive,  # noqa: E402
                     queue_event_table, run_sql, scratch_db, wait_for)

log = logging.getLogger("soak")

QUEUE = "soakqueue"
TABLES = ("soak.t1", "soak.t2", "soak.t3", "soak.t4")  # logutriga puts the table name in ev_extra1
CONSUMER = "soak_splitter"

SOURCE_SETUP = """
create schema if not exists soak;
select pgq.create_queue('soakqueue');
select pgq.set_queue_config('soakqueue', 'ticker_max_lag', '0.5 seconds');
""" + "".join(
    f"""
create table {t} (id bigint, payload text, at timestamptz default now());
create trigger soak_event before insert on {t}
    for each row execute procedure pgq.logutriga('soakqueue', 'SKIP');
"""
    for t in TABLES
)


@dataclass
class SoakReport:
    seconds: float
    produced: int
    in_source_queue: int
    moved: int
    lost: int
    duplicated: int
    reordered_queues: int
    kills: int
    ticks: int
    batches_applied: int
    replays_skipped: int  # batches a killed driver had committed on the target but not finished

    @property
    def ok(self) -> bool:
        return (self.lost, self.duplicated, self.reordered_queues) == (0, 0, 0) and self.produced == self.in_source_queue

    def lines(self) -> list[str]:
        return [
            f"soak ran {self.seconds:.0f} s",
            f"events produced:   {self.produced} (in the source queue: {self.in_source_queue})",
            f"events moved:      {self.moved}",
            f"events lost:       {self.lost}",
            f"events duplicated: {self.duplicated}",
            f"queues out of source order: {self.reordered_queues}",
            f"kills survived:    {self.kills}",
            f"source ticks: {self.ticks}, batches applied: {self.batches_applied},"
            f" replays skipped as already applied: {self.replays_skipped}",
            "RESULT: " + ("exactly once" if self.ok else "FAILED"),
        ]


class Producer(threading.Thread):
    """Inserts small transactions of rows into the logutriga tables until
    stopped; counts what it committed."""

    def __init__(self, dsn: str, seed: int) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.dsn = dsn
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.produced = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = psycopg2.connect(self.dsn)
            with conn, conn.cursor() as cur:
                while not self.stopping.is_set():
                    n = self.rng.randint(1, 40)
                    table = self.rng.choice(TABLES)
                    cur.execute(
                        f"insert into {table} (id, payload)"  # table: one of our constants
                        " select %s + i, repeat(md5(i::text), %s) || E'\\t\\u00e9\\n' from generate_series(1, %s) i",
                        (self.produced, self.rng.randint(0, 8), n),
                    )
                    conn.commit()
                    self.produced += n
                    time.sleep(self.rng.uniform(0, 0.02))
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def stop(self) -> int:
        self.stopping.set()
        self.join()
        if self.error is not None:
            raise RuntimeError(f"producer failed: {self.error}") from self.error
        return self.produced


class Pgqd:
    """pgqd ticking the source database, with its own config in *workdir*."""

    def __init__(self, src_dsn: str, workdir: Path) -> None:
        params = psycopg2.extensions.parse_dsn(src_dsn)
        dbname = params.pop("dbname")
        base = " ".join(f"{k}={v}" for k, v in params.items())
        conf = workdir / "pgqd.ini"
        conf.write_text(
            "[pgqd]\n"
            f"logfile = {workdir / 'pgqd.log'}\n"
            f"pidfile = {workdir / 'pgqd.pid'}\n"
            f"base_connstr = {base}\n"
            f"initial_database = {dbname}\n"
            f"database_list = {dbname}\n"
            "ticker_period = 0.2\n"
            "check_period = 10\n"
            "retry_period = 5\n"
            "maint_period = 30\n"
        )
        self.proc = subprocess.Popen(["pgqd", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DaemonDriver:
    """qsplit-driver -d: forks into the background and writes its pid file;
    killed by the pid in that file, restarted by running -d again (the
    stale pid file of a killed daemon does not stop it)."""

    def __init__(self, cluster: Cluster, ini: Path, pidfile: Path) -> None:
        self.cluster, self.ini, self.pidfile = cluster, ini, pidfile
        self.pid: int | None = None

    def start(self) -> None:
        previous = self.pid
        started = self.cluster.run_driver("-d", str(self.ini), timeout=60)
        if started.returncode != 0:
            raise RuntimeError(f"qsplit-driver -d failed ({started.returncode}): {started.stderr}")
        wait_for(lambda: (pid := self._pid_in_file()) is not None and pid != previous and process_alive(pid),
                 30, "the daemon's pid file")
        self.pid = self._pid_in_file()

    def _pid_in_file(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def signal(self, sig: int) -> None:
        """Send *sig* and wait until the daemon is gone."""
        pid = self.pid
        if pid is None or not process_alive(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        # gone for good, zombie reaped: qsplit-driver -d takes a zombie's pid
        # in the pid file for a running driver
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 60, f"driver pid {pid} to exit", interval=0.02)


def _hashes_by_queue(dsn: str, queue: str, route: bool) -> dict[str, list[str]]:
    """md5 of every event's fields, in ev_id order, per route (source) or
    for the one queue (target)."""
    table = queue_event_table(dsn, queue)
    group = "ev_extra1" if route else "NULL::text"
    out: dict[str, list[str]] = collections.defaultdict(list)
    for key, digest in run_sql(dsn, f"select {group}, md5(row({', '.join(EVENT_FIELDS)})::text) from {table} order by ev_id"):
        out[key if route else queue].append(digest)
    return out


def compare(src_dsn: str, dst_dsn: str) -> tuple[int, int, int, int, int]:
    """(in source queue, moved, lost, duplicated, queues out of order)."""
    source = _hashes_by_queue(src_dsn, QUEUE, route=True)
    in_source = sum(map(len, source.values()))
    moved = lost = dup = reordered = 0
    for q in sorted(set(source) | set(TABLES)):
        want = source.get(q, [])
        have = _hashes_by_queue(dst_dsn, q, route=False)[q]
        moved += len(have)
        l, d = diff_counts(want, have)
        lost, dup = lost + l, dup + d
        reordered += (l, d) == (0, 0) and have != want
    return in_source, moved, lost, dup, reordered


def setup(src_dsn: str, dst_dsn: str) -> None:
    run_sql(src_dsn, SOURCE_SETUP)
    for t in TABLES:
        run_sql(dst_dsn, "select pgq.create_queue(%s)", (t,))


def run(src_dsn: str, dst_dsn: str, workdir: Path, seconds: float, seed: int,
        kill_every: tuple[float, float] = (0.3, 4.0), read_ahead: bool = False) -> SoakReport:
    """*read_ahead*: the driver overlaps batches (read_ahead = 1)."""
    rng = random.Random(seed)
    cluster = Cluster(src_dsn=src_dsn, dst_dsn=dst_dsn, workdir=workdir)
    setup(src_dsn, dst_dsn)
    ini = cluster.write_ini(job_name=CONSUMER, pgq_queue_name=QUEUE, loop_delay="0.1",
                            read_ahead="1" if read_ahead else "0")
    first = cluster.run_driver("--once", str(ini))  # registers the consumer
    if first.returncode != 0:
        raise RuntimeError(f"driver could not register: {first.stderr}{cluster.log_text(CONSUMER)}")

    pgqd = Pgqd(src_dsn, workdir)
    producer = Producer(src_dsn, rng.randrange(10**9))
    driver = DaemonDriver(cluster, ini, workdir / "pid" / f"{CONSUMER}.pid")
    kills = 0
    started = time.monotonic()
    try:
        producer.start()
        driver.start()
        while time.monotonic() - started < seconds:
            time.sleep(rng.uniform(*kill_every))
            driver.signal(signal.SIGKILL)
            kills += 1
            if kills % 10 == 0:
                log.info("%.0f s: %d kills, %d events produced", time.monotonic() - started, kills, producer.produced)
            driver.start()
        produced = producer.stop()
        cluster.tick(QUEUE)  # the last events get their tick now (pgqd would, a little later)
        wait_for(lambda: drained(cluster, CONSUMER, QUEUE), 300, "the driver to drain the source queue", interval=0.5)
        driver.signal(signal.SIGTERM)
    finally:
        producer.stopping.set()
        driver.signal(signal.SIGKILL)
        pgqd.stop()
    elapsed = time.monotonic() - started
    in_source, moved, lost, dup, reordered = compare(src_dsn, dst_dsn)
    (ticks,) = run_sql(src_dsn, "select count(*) from pgq.tick t join pgq.queue q on q.queue_id = t.tick_queue"
                              " where q.queue_name = %s", (QUEUE,))[0]
    driver_log = cluster.log_text(CONSUMER)
    return SoakReport(elapsed, produced, in_source, moved, lost, dup, reordered, kills, ticks,
                      driver_log.count(" applied: {count:"), driver_log.count("skipped, already applied on the target"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "300")))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--prefix", default=os.environ.get("QSPLIT_TEST_DB_PREFIX", "qsplit"))
    p.add_argument("--read-ahead", type=int, choices=(0, 1), default=int(os.environ.get("SOAK_READ_AHEAD", "1")),
                   help="the driver's read_ahead (default 1, or SOAK_READ_AHEAD)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    with (scratch_db("soak_src", prefix=args.prefix, keep=True) as src,
          scratch_db("soak_dst", prefix=args.prefix, keep=True) as dst,
          tempfile.TemporaryDirectory(prefix="qsplit-soak-") as tmp):
        install_qsplit(dst)
        log.info("soak: %.0f s, seed %d, read_ahead %d, source %s, target %s", args.seconds, seed, args.read_ahead,
                 src, dst)
        report = run(src, dst, Path(tmp), args.seconds, seed, read_ahead=bool(args.read_ahead))
    for line in report.lines():
        log.info("%s", line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
