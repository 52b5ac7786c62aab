"""The test toolkit: everything the tests, tests/soak.py and bench/ share.
Test modules import from here (and get fixtures from conftest.py), never
from one another and never a name that starts with an underscore.

One of each kind of helper:
  where the server is       PG_HOST, PG_PORT (PG_PORT_SRC/DST, TWO_SERVERS), PG_USER, PREFIX, dsn_for, dsn_as,
                            restart_server
  roles                     cluster_role, Cluster.connect_as
  one-off SQL               run_sql
  scratch databases         scratch_db
  schema install            install_qsplit, make_install_sql, install_via, install_paths, offline_script,
                            schema_dump, ...
  a source/target pair      Cluster (connections, ticks, the queues read back, the ini, run_driver)
  queues and events         create_queues, setup_source, produce (produce_bulk: one huge batch)
  running the driver        run_driver (to its exit), Driver (in the background), drivers_running;
                            all via driver_env
  waiting                   wait_for (poll until true), wait_for_lock_wait
  the consumer's state      open_batches, drained, driver_backends, terminate_backend
  the result                source_by_route, Ledger, assert_exactly_once, diff_counts, queue_digests
"""

from __future__ import annotations

import collections
import getpass
import os
import signal
import subprocess
import sys
import time
from signal import SIGTERM
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import NamedTuple, TypeVar

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

REPO = Path(__file__).resolve().parent.parent
# the installed console script, as a DBA runs it
_SCRIPT = Path(sys.executable).parent / "qsplit-driver"
DRIVER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "qsplit.cli"]

# the server the tests run against
PG_HOST = os.environ.get("PGHOST_TEST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER") or getpass.getuser()
# source and target may live on two servers, even of two majors:
# PGPORT_SRC / PGPORT_DST (make test-matrix's mixed pairs), or
# QSPLIT_TEST_TARGET_PORT for the target (make test-two-servers, on the
# cluster scripts/target-cluster.sh starts); unset, both live on PGPORT
PG_PORT_SRC = int(os.environ.get("PGPORT_SRC") or PG_PORT)
PG_PORT_DST = int(os.environ.get("PGPORT_DST") or os.environ.get("QSPLIT_TEST_TARGET_PORT") or PG_PORT)
TARGET_PORT = PG_PORT_DST
TWO_SERVERS = PG_PORT_SRC != PG_PORT_DST
# distinct names let two test runs share one server (e.g. a developer and CI)
PREFIX = os.environ.get("QSPLIT_TEST_DB_PREFIX", "qsplit_test")
# the drivers of the tests log in as these non-superuser roles: on the source
# a PgQ consumer (pgq_reader), on the target qsplit_writer and nothing else
SRC_DRIVER_ROLE = f"{PREFIX}_src_driver"
DST_DRIVER_ROLE = f"{PREFIX}_dst_driver"

SOURCE_QUEUE = "singlequeue"
CONSUMER = "test_splitter"  # the job_name (PgQ consumer) of Cluster.write_ini
APP_PREFIX = "qsplit-driver "  # the driver's application_name: this + job_name

# every field of an event that must survive the split, in a fixed order
EVENT_FIELDS = ("ev_time", "ev_type", "ev_data", "ev_extra1", "ev_extra2", "ev_extra3", "ev_extra4")
ROUTE_INDEX = EVENT_FIELDS.index("ev_extra1")

T = TypeVar("T")


# the server ----------------------------------------------------------------------
def dsn_for(dbname: str, user: str = PG_USER, port: int = PG_PORT) -> str:
    return f"host={PG_HOST} port={port} user={user} dbname={dbname}"


def dsn_as(dsn: str, role: str) -> str:
    """*dsn* (one of the tests', as PG_USER) logging in as *role* instead."""
    return dsn.replace(f"user={PG_USER}", f"user={role}")


def run_sql(dsn: str, statement: str | sql.Composable, args=None) -> list[tuple]:
    """Run one statement on its own autocommit connection; its rows, if any."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def restart_server(dsn: str) -> None:
    """Restart the local PostgreSQL server that *dsn* connects to: a cluster
    of the version matrix (scripts/pg-matrix.sh) or a Debian cluster
    (pg_lsclusters), found by its port and data directory, never another
    server of the machine."""
    ((port, data_dir),) = run_sql(dsn, "select current_setting('port'), current_setting('data_directory')")
    matrix = REPO / "scripts" / "pg-matrix.sh"
    found = subprocess.run([str(matrix), "major-of-port", port], capture_output=True, text=True)
    if found.returncode == 0:
        major = found.stdout.strip()
        subprocess.run([str(matrix), "restart", major], check=True, timeout=120)
        return
    out = subprocess.run(["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        version, name, cl_port, _status, _owner, cl_dir, *_ = line.split()
        if cl_port == port and os.path.realpath(cl_dir) == os.path.realpath(data_dir):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart"],
                           check=True, timeout=120)
            return
    raise AssertionError(f"no local cluster serves port {port} ({data_dir}): pg_lsclusters, scripts/pg-matrix.sh status")


def cluster_role(name: str, *member_of: str, login: bool = True, port: int = PG_PORT) -> str:
    """A role of the cluster on *port*, never a superuser (made when missing:
    roles are cluster-wide, and runs with other prefixes must not collide),
    granted *member_of* besides what it had."""
    admin = dsn_for("postgres", port=port)
    for (stmt,) in run_sql(admin, "select format('create role %%I %%s', %s::text, %s::text)"
                                  " where not exists (select 1 from pg_roles where rolname = %s)",
                           (name, "login" if login else "nologin", name)):
        run_sql(admin, stmt)
    run_sql(admin, sql.SQL("alter role {} nosuperuser").format(sql.Identifier(name)))
    for role in member_of:
        run_sql(admin, sql.SQL("grant {} to {}").format(sql.Identifier(role), sql.Identifier(name)))
    return name


@contextmanager
def scratch_db(tag: str, *, pgq: bool = True, encoding: str | None = None, prefix: str = PREFIX,
               keep: bool = False, port: int = PG_PORT) -> Iterator[str]:
    """A fresh database named <prefix>_<tag> (this run's prefix: never another
    run's) on the server on *port*, with the pgq extension unless *pgq* is
    false, in *encoding* (with the C locale) if given; its dsn.  Dropped
    afterwards unless *keep*."""
    name = f"{prefix}_{tag}"[:63]
    drop = sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
    create = sql.SQL("create database {} template template0").format(sql.Identifier(name))
    if encoding:
        create += sql.SQL(" encoding {} lc_collate 'C' lc_ctype 'C'").format(sql.Literal(encoding))
    run_sql(dsn_for("postgres", port=port), drop)
    run_sql(dsn_for("postgres", port=port), create)
    dsn = dsn_for(name, port=port)
    try:
        if pgq:
            run_sql(dsn, "create extension pgq")
        yield dsn
    finally:
        if not keep:
            run_sql(dsn_for("postgres", port=port), drop)


# schema install -------------------------------------------------------------------
def install_qsplit(conninfo: dict | str) -> None:
    """alembic upgrade head, what `make install-sql` does."""
    from qsplit import install

    dsn = conninfo if isinstance(conninfo, str) else " ".join(f"{k}={v}" for k, v in conninfo.items())
    install.upgrade(dsn)


def make_install_sql(dsn: str) -> subprocess.CompletedProcess:
    """`make install-sql DSN=...`, as the README tells a DBA."""
    return subprocess.run(["make", "-s", "install-sql", f"DSN={dsn}"], cwd=REPO, capture_output=True, text=True)


@cache
def offline_script(from_revision: str | None = None) -> str:
    """The offline SQL script (what `make sql-script [FROM=...]` writes)."""
    from qsplit import install

    return install.sql_script(from_revision)


def run_psql_script(dsn: str, text: str) -> subprocess.CompletedProcess:
    """Apply an SQL script the way the DBA docs say: psql, stop at the first error."""
    return subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", "-"],
        input=text, capture_output=True, text=True, timeout=120,
    )


def apply_offline_script(dsn: str, from_revision: str | None = None) -> None:
    result = run_psql_script(dsn, offline_script(from_revision))
    assert result.returncode == 0, result.stderr


def upgrade_starts() -> list[str]:
    """The revisions an existing target may be at before an upgrade to head:
    every revision but head (the oldest alone while there is only one)."""
    from qsplit import install

    revs = install.revisions()
    return revs[:-1] or revs[:1]


def install_paths() -> list[str]:
    """Every way to bring a target with pgq to head, other than a fresh
    `alembic upgrade head` (the test templates' own path):
      sql_script           the offline install script, applied with psql
      upgrade_from_<rev>   alembic upgrade to <rev>, then to head
      sql_upgrade_<rev>    alembic upgrade to <rev>, then the offline upgrade
                           script FROM=<rev>, applied with psql"""
    paths = ["sql_script"]
    for rev in upgrade_starts():
        paths += [f"upgrade_from_{rev}", f"sql_upgrade_{rev}"]
    return paths


def install_via(path: str, dsn: str) -> None:
    """Bring *dsn* (pgq, no qsplit) to head along *path* (see install_paths)."""
    from qsplit import install

    if path == "alembic":
        install.upgrade(dsn)
    elif path == "sql_script":
        apply_offline_script(dsn)
    elif path.startswith("upgrade_from_"):
        install.upgrade(dsn, path.removeprefix("upgrade_from_"))
        install.upgrade(dsn, "head")
    elif path.startswith("sql_upgrade_"):
        rev = path.removeprefix("sql_upgrade_")
        install.upgrade(dsn, rev)
        apply_offline_script(dsn, rev)
    else:
        raise ValueError(f"unknown install path {path!r}")


def schema_dump(dsn: str) -> str:
    """`pg_dump --schema-only` of the qsplit schema, without its per-run lines."""
    out = subprocess.run(
        ["pg_dump", "--schema-only", "--schema=qsplit", "-d", dsn], capture_output=True, text=True, check=True
    ).stdout
    # \restrict / \unrestrict carry a random key per run (pg_dump >= 15.14)
    return "\n".join(
        line for line in out.splitlines() if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict"))
    )


def queue_event_table(dsn: str, queue: str) -> str:
    """The parent event table of *queue* (it covers every rotation), as a
    name quoted by the server."""
    rows = run_sql(
        dsn,
        "select format('%%I.%%I', n.nspname, c.relname) from pgq.queue q"
        " join pg_class c on c.oid = (q.queue_data_pfx)::regclass"
        " join pg_namespace n on n.oid = c.relnamespace where q.queue_name = %s",
        (queue,),
    )
    if not rows:
        raise AssertionError(f"no queue {queue!r}")
    return rows[0][0]


# the driver ---------------------------------------------------------------------
def driver_env(env: dict | None = None, base: dict | None = None) -> dict[str, str]:
    """The environment a driver of the tests runs in: *base* (default: this
    process's), never a QSPLIT_FAILPOINT from outside, then *env* on top."""
    full = dict(os.environ if base is None else base)
    full.pop("QSPLIT_FAILPOINT", None)
    full.update(env or {})
    return full


def run_driver(*args: str, cwd: Path = REPO, env: dict | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """``qsplit-driver ARGS`` to its exit, its output captured."""
    return subprocess.run(DRIVER + list(args), capture_output=True, text=True, env=driver_env(env),
                          timeout=timeout, cwd=cwd)


# a source/target pair --------------------------------------------------------------
@dataclass
class Cluster:
    """The source and target databases of one test, with helpers to produce,
    tick, run the driver and read the target queues back."""

    src_dsn: str
    dst_dsn: str
    workdir: Path
    # what the driver logs in with (non-superuser roles); default: as the tests
    driver_src_dsn: str | None = None
    driver_dst_dsn: str | None = None
    opened: list = field(default_factory=list, repr=False)  # closed by close()

    # connections ---------------------------------------------------------
    def connect(self, dsn: str, autocommit: bool = True) -> psycopg2.extensions.connection:
        """A connection to *dsn* that close() closes."""
        conn = psycopg2.connect(dsn)
        conn.autocommit = autocommit
        self.opened.append(conn)
        return conn

    def connect_as(self, role: str, side: str = "dst", autocommit: bool = True) -> psycopg2.extensions.connection:
        """A connection to one side ('src' or 'dst') logged in as *role*."""
        dsn = self.dst_dsn if side == "dst" else self.src_dsn
        return self.connect(dsn_as(dsn, role), autocommit)

    def src(self, autocommit: bool = True) -> psycopg2.extensions.connection:
        return self.connect(self.src_dsn, autocommit)

    def dst(self, autocommit: bool = True) -> psycopg2.extensions.connection:
        return self.connect(self.dst_dsn, autocommit)

    def lock_event_tables(self, queues) -> psycopg2.extensions.connection:
        """A target connection holding SHARE locks on the current event
        table of each of *queues* until it rolls back: an apply_batch that
        inserts there waits."""
        conn = self.dst(autocommit=False)
        with conn.cursor() as cur:
            for q in queues:
                cur.execute("select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                            " where c.oid = pgq.current_event_table(%s)::regclass", (q,))
                cur.execute(sql.SQL("lock table {} in share mode").format(sql.Identifier(*cur.fetchone())))
        return conn

    def close(self) -> None:
        for conn in self.opened:
            conn.close()
        self.opened.clear()

    def src_exec(self, statement: str, args=None) -> list[tuple]:
        return run_sql(self.src_dsn, statement, args)

    def dst_exec(self, statement: str, args=None) -> list[tuple]:
        return run_sql(self.dst_dsn, statement, args)

    # the source queue -------------------------------------------------------
    def tick(self, queue: str = SOURCE_QUEUE) -> None:
        """Cut a batch boundary on the source queue now (what pgqd does)."""
        self.src_exec("select pgq.force_tick(%s); select pgq.ticker(%s);", (queue, queue))

    def source_events(self, queue: str = SOURCE_QUEUE) -> list[tuple]:
        """Every event ever put on the source queue, in ev_id order:
        (ev_id,) + EVENT_FIELDS."""
        table = queue_event_table(self.src_dsn, queue)
        return self.src_exec(f"select ev_id, {', '.join(EVENT_FIELDS)} from {table} order by ev_id")

    # the target queues ------------------------------------------------------
    def target_events(self, queue: str) -> list[tuple]:
        """Every event in a target queue, in ev_id order, EVENT_FIELDS only."""
        table = queue_event_table(self.dst_dsn, queue)
        return self.dst_exec(f"select {', '.join(EVENT_FIELDS)} from {table} order by ev_id")

    def target_queue_counts(self) -> dict[str, int]:
        out = {}
        for (name,) in self.dst_exec("select queue_name from pgq.queue order by 1"):
            out[name] = len(self.target_events(name))
        return out

    # the driver --------------------------------------------------------------
    def write_ini(self, name: str = "qsplit.ini", section: str = "queue_splitter", **keys: str | None) -> Path:
        """An ini in the test's directory; *keys* override (None: leave out)."""
        values = {
            "job_name": CONSUMER,
            "src_db": self.driver_src_dsn or self.src_dsn,
            "dst_db": self.driver_dst_dsn or self.dst_dsn,
            "pgq_queue_name": SOURCE_QUEUE,
            "logfile": str(self.workdir / "log" / "%(job_name)s.log"),
            "pidfile": str(self.workdir / "pid" / "%(job_name)s.pid"),
        }
        values.update(keys)
        lines = [f"[{section}]"] + [f"{k} = {v}" for k, v in values.items() if v is not None]
        path = self.workdir / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def run_driver(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """``qsplit-driver ARGS`` in the test's directory, to its exit."""
        return run_driver(*args, cwd=self.workdir, env=env, timeout=timeout)

    def log_text(self, job_name: str = CONSUMER) -> str:
        path = self.workdir / "log" / f"{job_name}.log"
        return path.read_text() if path.exists() else ""


class Driver:
    """``qsplit-driver ARGS`` started in the background in the test's
    directory; its stdout and stderr go to files there.  As a context
    manager it is killed on the way out."""

    def __init__(self, cluster: Cluster, *args: str, env: dict | None = None) -> None:
        stamp = time.monotonic_ns()
        self.out = cluster.workdir / f"driver-{stamp}.stdout"
        self.err = cluster.workdir / f"driver-{stamp}.stderr"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(DRIVER + list(args), stdout=out, stderr=err, env=driver_env(env),
                                         cwd=cluster.workdir)

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int = SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float | None = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL (like a power cut) if it still runs, and reap it."""
        if self.alive():
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self, sig: int = SIGTERM, timeout: float = 10) -> int:
        """Send *sig* and wait for the exit; killed (and TimeoutExpired
        raised) if it does not exit within *timeout*."""
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

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
        while self.alive():
            peak = max(peak, self.peak_rss_kib() or 0)
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.proc.args, timeout)
            time.sleep(interval)
        return self.wait(), peak


@contextmanager
def drivers_running(cluster: Cluster, n: int, *args: str, env: dict | None = None) -> Iterator[list[Driver]]:
    """*n* drivers ``qsplit-driver ARGS`` running at once; stopped on the way
    out (SIGTERM, killed when one does not exit)."""
    drivers = [Driver(cluster, *args, env=env) for _ in range(n)]
    try:
        yield drivers
    finally:
        for d in drivers:
            d.stop()


def process_alive(pid: int) -> bool:
    """True while *pid* runs (a zombie counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def home_env(cluster: Cluster) -> dict[str, str]:
    """HOME of the test's own directory, so ~/log and ~/pid land there."""
    return {"HOME": str(cluster.workdir)}


EXAMPLE_JOB = "queue_spliter_sourcedb_sourceq_targetdb"


def example_ini(cluster: Cluster, queue: str = SOURCE_QUEUE) -> Path:
    """The shipped queue_splitter example ini (examples/queue_splitter.ini),
    only its connection strings and queue name changed; with home_env() its
    ~/log and ~/pid land in the test's directory."""
    text = (REPO / "examples" / "queue_splitter.ini").read_text()
    text = (text.replace("dbname=sourcedb", cluster.driver_src_dsn or cluster.src_dsn)
            .replace("dbname=targetdb", cluster.driver_dst_dsn or cluster.dst_dsn)
            .replace("= sourceq", f"= {queue}"))
    path = cluster.workdir / "queue_splitter.ini"
    path.write_text(text)
    return path


# waiting ---------------------------------------------------------------------------
def wait_for(predicate: Callable[[], T], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.05) -> T:
    """Poll *predicate* until it returns something true; return that.  A
    lost connection inside it (a server restarting) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except psycopg2.OperationalError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# queues and events -------------------------------------------------------------------
def create_queues(cluster: Cluster, targets: list[str], source: str = SOURCE_QUEUE) -> None:
    """The source queue and the target queues *targets*."""
    cluster.src_exec("select pgq.create_queue(%s)", (source,))
    for q in targets:
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))


def setup_source(cluster: Cluster, ini: Path, targets: list[str] = ()) -> Path:
    """Create the source queue (and *targets* on the target), then register
    the consumer with a first driver run; returns *ini*."""
    create_queues(cluster, list(targets))
    first = cluster.run_driver("--once", str(ini))  # registers the consumer
    assert first.returncode == 0, first.stderr + cluster.log_text()
    return ini


def run_ok(cluster: Cluster, ini: Path, *args: str) -> subprocess.CompletedProcess:
    """``qsplit-driver --once ARGS INI`` must succeed and leave no batch open."""
    result = cluster.run_driver("--once", *args, str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert open_batches(cluster) == 0
    return result


def produce(cluster: Cluster, routes: list[str | None] | dict[str, int], per_batch: int | None = None,
            batches: int = 1, start: int = 0, pad: int = 0, tick: bool = True, queue: str = SOURCE_QUEUE) -> None:
    """*batches* x *per_batch* events on the source queue, numbered from
    *start*; event i is routed (ev_extra1) to routes[i % len(routes)], its
    ev_data 'n=<i>' (padded by *pad* bytes), ev_extra2 'x2=<i>', ev_extra4
    'x4'.  *per_batch* defaults to one event per entry of *routes*; routes
    {route: n} stand for n times each route, in that order.  A tick after
    each batch unless *tick* is false."""
    if isinstance(routes, dict):
        routes = [route for route, n in routes.items() for _ in range(n)]
    per_batch = len(routes) if per_batch is None else per_batch
    conn = psycopg2.connect(cluster.src_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for b in range(batches):
                first = start + b * per_batch
                cur.execute(
                    "select pgq.insert_event(%s, 'ev', 'n=' || i || case when %s > 0 then '&pad=' || repeat('x', %s)"
                    "       else '' end, (%s::text[])[1 + i %% %s], 'x2=' || i, NULL, 'x4')"
                    "  from generate_series(%s, %s) i",
                    (queue, pad, pad, list(routes), len(routes), first, first + per_batch - 1),
                )
                if tick:
                    cluster.tick(queue)
    finally:
        conn.close()


def produce_bulk(cluster: Cluster, targets: list[str], n: int) -> None:
    """*n* events straight into the source queue's current event table (the
    ticker sees its sequence), in one statement: the fast way to a huge
    batch, where produce's pgq.insert_event per event would take minutes."""
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


# the state of the consumer --------------------------------------------------------------
def open_batches(cluster: Cluster, consumer: str = CONSUMER) -> int:
    """How many batches *consumer* has open on the source (0 or 1)."""
    (row,) = cluster.src_exec(
        "select count(*) from pgq.subscription s join pgq.consumer co on co.co_id = s.sub_consumer"
        " where co.co_name = %s and s.sub_batch is not null",
        (consumer,),
    )
    return row[0]


def drained(cluster: Cluster, consumer: str = CONSUMER, queue: str = SOURCE_QUEUE) -> bool:
    """The consumer has finished every batch up to the queue's last tick."""
    rows = cluster.src_exec(
        "select c.last_tick = q.last_tick_id and c.current_batch is null"
        "  from pgq.get_consumer_info(%s, %s) c, pgq.get_queue_info(%s) q",
        (queue, consumer, queue),
    )
    return bool(rows and rows[0][0])


class Backend(NamedTuple):
    pid: int
    wait_event_type: str | None
    state: str | None


def driver_backends(cluster: Cluster, side: str, job_name: str | None = None) -> list[Backend]:
    """The sessions of the driver (of *job_name*, or any) on one side ('src'
    or 'dst')."""
    run = cluster.src_exec if side == "src" else cluster.dst_exec
    name = APP_PREFIX + ("%" if job_name is None else job_name)
    return [Backend(*row) for row in run(
        "select pid, wait_event_type, state from pg_stat_activity"
        " where datname = current_database() and application_name like %s and pid <> pg_backend_pid()",
        (name,),
    )]


def wait_for_lock_wait(cluster: Cluster, timeout: float = 20) -> int:
    """Wait until a driver session on the target waits on a lock; its pid."""
    return wait_for(
        lambda: next((b.pid for b in driver_backends(cluster, "dst") if b.wait_event_type == "Lock"), None),
        timeout, "the driver to wait on the locked consumer row",
    )


def terminate_backend(cluster: Cluster, pid: int, side: str = "src") -> bool:
    """pg_terminate_backend(pid) on one side's server ('src' or 'dst'):
    whether it was there."""
    run = cluster.src_exec if side == "src" else cluster.dst_exec
    return run("select pg_terminate_backend(%s)", (pid,)) == [(True,)]


# the result ---------------------------------------------------------------------------
def source_by_route(cluster: Cluster, queue: str = SOURCE_QUEUE) -> dict[str | None, list[tuple]]:
    """The source events (EVENT_FIELDS) by routing value (ev_extra1), in
    source order: what each target queue must hold."""
    out: dict[str | None, list[tuple]] = {}
    for ev in cluster.source_events(queue):
        out.setdefault(ev[1 + ROUTE_INDEX], []).append(ev[1:])
    return out


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


def diff_counts(expected: list, got: list) -> tuple[int, int]:
    """(lost, duplicated) between two multisets of events."""
    want, have = collections.Counter(expected), collections.Counter(got)
    return sum((want - have).values()), sum((have - want).values())


def assert_exactly_once(cluster: Cluster, targets: list[str], expected: dict[str, list[tuple]] | None = None,
                        got: dict[str, list[tuple]] | None = None) -> int:
    """Every target queue holds exactly its source events, every field, in
    source order (*expected*: default the source queue now; *got*: default
    the target queues now).  Returns the number of events checked."""
    expected = expected if expected is not None else source_by_route(cluster)
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


def queue_digests(dsn: str, queue: str, by_route: bool = False) -> dict[str | None, tuple[int, str]]:
    """{route or None: (count, md5 over every field of every event in ev_id
    order)}, computed on the server, so a million events are compared without
    fetching them.  *by_route* groups by ev_extra1 (the source queue)."""
    fields = ", ".join(EVENT_FIELDS)
    group = "ev_extra1" if by_route else "NULL::text"
    rows = run_sql(
        dsn,
        f"select {group}, count(*), md5(string_agg(md5(row({fields})::text), '' order by ev_id))"
        f"  from {queue_event_table(dsn, queue)} group by 1",
    )
    return {r[0]: (r[1], r[2]) for r in rows}
