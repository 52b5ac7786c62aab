"""The bench's databases and data: a scratch source and target database on
the local server, and source queues filled with logutriga-like events cut
into batches by ticks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from qsplit import install

import original

log = logging.getLogger("bench")

# the mark a database made by the bench carries; the bench only ever drops
# a database that has it
SCRATCH_COMMENT = "qsplit bench scratch database (made and dropped by make bench)"
N_TARGET_QUEUES = 20


def target_queue_names(n: int = N_TARGET_QUEUES) -> list[str]:
    return [f"bench.q{i:02d}" for i in range(1, n + 1)]


@dataclass(frozen=True)
class Server:
    """libpq conninfo of the server without dbname, e.g. 'host=127.0.0.1'."""

    conninfo: str

    def dsn(self, dbname: str) -> str:
        return psycopg2.extensions.make_dsn(self.conninfo, dbname=dbname)

    def execute(self, dbname: str, query: str | sql.Composable, args=None) -> list[tuple]:
        conn = psycopg2.connect(self.dsn(dbname))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def recreate_database(self, dbname: str) -> None:
        """Drop *dbname* if the bench made it earlier, then create it afresh.
        A database of that name without the bench's mark is left alone."""
        rows = self.execute(
            "postgres",
            "select shobj_description(oid, 'pg_database') from pg_database where datname = %s",
            (dbname,),
        )
        if rows:
            if rows[0][0] != SCRATCH_COMMENT:
                raise SystemExit(
                    f"database {dbname!r} exists and was not made by the bench; "
                    "choose other names with --src-db/--dst-db"
                )
            self.execute("postgres", sql.SQL("drop database {} with (force)").format(sql.Identifier(dbname)))
        self.execute("postgres", sql.SQL("create database {}").format(sql.Identifier(dbname)))
        self.execute(
            "postgres",
            sql.SQL("comment on database {} is {}").format(sql.Identifier(dbname), sql.Literal(SCRATCH_COMMENT)),
        )

    def drop_database(self, dbname: str) -> None:
        self.execute("postgres", sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname)))

    def postmaster_pid(self) -> int | None:
        """The server's postmaster pid when it runs on this machine and its
        data directory is readable here (for the CPU meter), else None."""
        (data_dir,) = self.execute("postgres", "select current_setting('data_directory')")[0]
        try:
            return int((Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def checkpoint(self) -> None:
        """Flush dirty buffers now, so no checkpoint lands inside a timing."""
        self.execute("postgres", "checkpoint")


def setup_databases(server: Server, src_db: str, targets: list[tuple[Server, str]],
                    made: list[tuple[Server, str]]) -> None:
    """The source database on *server* and a target database on each of
    *targets* (server, name), made afresh; every database made is added
    to *made* (for the caller to drop), as soon as it exists."""
    server.recreate_database(src_db)
    made.append((server, src_db))
    server.execute(src_db, "create extension pgq")
    for dst, dst_db in targets:
        if (dst, dst_db) in made:
            raise SystemExit(f"database {dst_db!r} would be both source and target; choose another --dst-db")
        dst.recreate_database(dst_db)
        made.append((dst, dst_db))
        dst.execute(dst_db, "create extension pgq")
        install.upgrade(dst.dsn(dst_db))
        original.prepare_target(dst.dsn(dst_db))


# ~100 bytes of urlencoded row data, the shape pgq.logutriga writes:
# ev_type 'I:id', ev_data 'id=..&col=..', ev_extra1 the routing value
_EVENT_SELECT = """
select now(), 'I:id',
       format('id=%%s&customer_id=%%s&amount=%%s.%%s&currency=EUR&status=paid&created=2026-11-29+00%%%%3A10%%%%3A%%s.%%s%%%%2B00',
              g, 10000 + (g * 7919) %% 90000, (g * 31) %% 10000, lpad(((g * 17) %% 100)::text, 2, '0'),
              lpad((g %% 60)::text, 2, '0'), lpad(((g * 7) %% 1000000)::text, 6, '0')),
       'bench.q' || lpad((1 + ((hashint8(g)::bigint %% %(nq)s) + %(nq)s) %% %(nq)s)::text, 2, '0')
  from generate_series(%(lo)s::bigint, %(hi)s::bigint) g
"""


@dataclass(frozen=True)
class SourceQueue:
    name: str
    start_tick: int      # register a consumer here to read every batch
    n_events: int
    n_batches: int


def fill_queue(server: Server, src_db: str, queue: str, n_events: int, batch_size: int,
               n_target_queues: int = N_TARGET_QUEUES) -> SourceQueue:
    """Create source *queue* and put *n_events* events in it, a tick after
    every *batch_size* events.  Events are spread over the target queues
    in an interleaved order, as independent producers would write them."""
    conn = psycopg2.connect(server.dsn(src_db))
    try:
        with conn.cursor() as cur:
            cur.execute("select pgq.create_queue(%s)", (queue,))
            conn.commit()
            start_tick = tick(cur, queue)
            conn.commit()
            n_batches = 0
            for lo in range(1, n_events + 1, batch_size):
                hi = min(lo + batch_size - 1, n_events)
                cur.execute("select pgq.current_event_table(%s)", (queue,))
                (table,) = cur.fetchone()
                cur.execute(
                    sql.SQL("insert into {} (ev_time, ev_type, ev_data, ev_extra1) ").format(
                        sql.SQL(table)  # pgq's own table name, no event data
                    )
                    + sql.SQL(_EVENT_SELECT),
                    {"lo": lo, "hi": hi, "nq": n_target_queues},
                )
                conn.commit()
                tick(cur, queue)
                conn.commit()
                n_batches += 1
        log.info("source queue %s: %d events in %d batches", queue, n_events, n_batches)
        return SourceQueue(queue, start_tick, n_events, n_batches)
    finally:
        conn.close()


def tick(cur, queue: str) -> int:
    cur.execute("select pgq.force_tick(%s)", (queue,))
    cur.execute("select pgq.ticker(%s)", (queue,))
    (tick_id,) = cur.fetchone()
    if tick_id is None:
        raise RuntimeError(f"pgq.ticker({queue!r}) made no tick")
    return tick_id


def register_consumer_at(server: Server, src_db: str, queue: SourceQueue, consumer: str) -> None:
    server.execute(src_db, "select pgq.register_consumer_at(%s, %s, %s)", (queue.name, consumer, queue.start_tick))


def reset_target_queues(server: Server, dst_db: str, names: list[str]) -> None:
    """Drop and create the target queues, so every run inserts into empty
    event tables."""
    conn = psycopg2.connect(server.dsn(dst_db))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in names:
                cur.execute("select pgq.drop_queue(%s, true) from pgq.queue where queue_name = %s", (name, name))
                cur.execute("select pgq.create_queue(%s)", (name,))
    finally:
        conn.close()


def target_count(server: Server, dst_db: str, names: list[str]) -> int:
    """Events in the target queues (all rotations of their event tables)."""
    total = 0
    for name in names:
        (table,) = server.execute(
            dst_db, "select queue_data_pfx from pgq.queue where queue_name = %s", (name,)
        )[0]
        total += server.execute(dst_db, sql.SQL("select count(*) from {}").format(sql.SQL(table)))[0][0]
    return total
