"""Test helpers shared by the test modules: a source/target pair of real
databases, event production and ticks on the source, the real driver run as
a subprocess, and the target queues read back."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions

REPO = Path(__file__).resolve().parent.parent
# the installed console script, as a DBA runs it
_SCRIPT = Path(sys.executable).parent / "qsplit-driver"
DRIVER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "qsplit.cli"]

# every field of an event that must survive the split, in a fixed order
EVENT_FIELDS = ("ev_time", "ev_type", "ev_data", "ev_extra1", "ev_extra2", "ev_extra3", "ev_extra4")


def install_qsplit(conninfo: dict | str) -> None:
    from qsplit import install

    dsn = conninfo if isinstance(conninfo, str) else " ".join(f"{k}={v}" for k, v in conninfo.items())
    install.upgrade(dsn)


@dataclass
class Cluster:
    src_dsn: str
    dst_dsn: str
    workdir: Path
    # what the driver logs in with (non-superuser roles); default: as the tests
    driver_src_dsn: str | None = None
    driver_dst_dsn: str | None = None
    _conns: list = field(default_factory=list)

    # connections ---------------------------------------------------------
    def _conn(self, dsn: str) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        self._conns.append(conn)
        return conn

    def src(self) -> psycopg2.extensions.connection:
        return self._conn(self.src_dsn)

    def dst(self) -> psycopg2.extensions.connection:
        return self._conn(self.dst_dsn)

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def src_exec(self, sql: str, args=None) -> list[tuple]:
        return run_sql(self.src_dsn, sql, args)

    def dst_exec(self, sql: str, args=None) -> list[tuple]:
        return run_sql(self.dst_dsn, sql, args)

    # the source queue -------------------------------------------------------
    def tick(self, queue: str = "singlequeue") -> None:
        """Cut a batch boundary on the source queue now (what pgqd does)."""
        self.src_exec("select pgq.force_tick(%s); select pgq.ticker(%s);", (queue, queue))

    def source_events(self, queue: str = "singlequeue") -> list[tuple]:
        """Every event ever put on the source queue, in ev_id order."""
        return self.src_exec(_queue_events_sql(self.src_dsn, queue))

    # the target queues ------------------------------------------------------
    def target_events(self, queue: str) -> list[tuple]:
        """Every event in a target queue, in ev_id order, EVENT_FIELDS only."""
        return self.dst_exec(_queue_events_sql(self.dst_dsn, queue, with_id=False))

    def target_queue_counts(self) -> dict[str, int]:
        out = {}
        for (name,) in self.dst_exec("select queue_name from pgq.queue order by 1"):
            out[name] = len(self.target_events(name))
        return out

    # the driver --------------------------------------------------------------
    def write_ini(self, name: str = "qsplit.ini", section: str = "queue_splitter", **keys: str) -> Path:
        values = {
            "job_name": "test_splitter",
            "src_db": self.driver_src_dsn or self.src_dsn,
            "dst_db": self.driver_dst_dsn or self.dst_dsn,
            "pgq_queue_name": "singlequeue",
            "logfile": str(self.workdir / "log" / "%(job_name)s.log"),
            "pidfile": str(self.workdir / "pid" / "%(job_name)s.pid"),
        }
        values.update(keys)
        lines = [f"[{section}]"] + [f"{k} = {v}" for k, v in values.items() if v is not None]
        path = self.workdir / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def run_driver(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        full_env = dict(os.environ)
        full_env.pop("QSPLIT_FAILPOINT", None)
        full_env.update(env or {})
        return subprocess.run(
            DRIVER + list(args), capture_output=True, text=True, env=full_env, timeout=timeout, cwd=self.workdir
        )

    def log_text(self, job_name: str = "test_splitter") -> str:
        path = self.workdir / "log" / f"{job_name}.log"
        return path.read_text() if path.exists() else ""


def run_sql(dsn: str, sql: str, args=None) -> list[tuple]:
    """Run one statement on its own autocommit connection; its rows, if any."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, args)
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


def _queue_events_sql(dsn: str, queue: str, with_id: bool = True) -> str:
    """SELECT of all events of *queue* (its parent event table covers every
    rotation), ordered by ev_id; the table name is quoted by the server."""
    rows = run_sql(
        dsn,
        "select format('%%I.%%I', n.nspname, c.relname) from pgq.queue q"
        " join pg_class c on c.oid = (q.queue_data_pfx)::regclass"
        " join pg_namespace n on n.oid = c.relnamespace where q.queue_name = %s",
        (queue,),
    )
    if not rows:
        raise AssertionError(f"no queue {queue!r}")
    cols = ("ev_id, " if with_id else "") + ", ".join(EVENT_FIELDS)
    return f"select {cols} from {rows[0][0]} order by ev_id"
