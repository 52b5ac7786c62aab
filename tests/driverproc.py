"""A qsplit-driver running in the background for the process-control tests,
and small waits on the things a test watches (files, processes, backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import DRIVER, REPO, Cluster

APP_PREFIX = "qsplit-driver "


def wait_for(predicate, timeout: float = 20.0, what: str = "condition", interval: float = 0.05):
    """Poll *predicate* until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True while *pid* runs (a zombie counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def home_env(cluster: Cluster) -> dict[str, str]:
    """HOME of the test's own directory, so ~/log and ~/pid land there."""
    return {"HOME": str(cluster.workdir)}


EXAMPLE_JOB = "queue_spliter_sourcedb_sourceq_targetdb"


def example_ini(cluster: Cluster, queue: str = "singlequeue") -> Path:
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


class Driver:
    """``qsplit-driver ARGS`` started in the background; output to files."""

    def __init__(self, cluster: Cluster, *args: str, env: dict | None = None) -> None:
        full_env = dict(os.environ)
        full_env.pop("QSPLIT_FAILPOINT", None)
        full_env.update(env or {})
        self.out = cluster.workdir / "driver.stdout"
        self.err = cluster.workdir / "driver.stderr"
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.proc = subprocess.Popen(DRIVER + list(args), stdout=out, stderr=err, env=full_env,
                                         cwd=cluster.workdir)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stderr(self) -> str:
        return self.err.read_text()


def driver_backends(cluster: Cluster, side: str) -> list[tuple[int, str | None, str]]:
    """(pid, wait_event_type, state) of the driver's sessions on one side."""
    run = cluster.src_exec if side == "src" else cluster.dst_exec
    return run(
        "select pid, wait_event_type, state from pg_stat_activity"
        " where datname = current_database() and application_name like %s and pid <> pg_backend_pid()",
        (APP_PREFIX + "%",),
    )


def wait_for_lock_wait(cluster: Cluster, timeout: float = 20) -> int:
    """Wait until a driver session on the target waits on a lock; its pid."""
    return wait_for(
        lambda: next((pid for pid, wait, _ in driver_backends(cluster, "dst") if wait == "Lock"), None),
        timeout, "the driver to wait on the locked consumer row",
    )


def open_batches(cluster: Cluster, consumer: str = "test_splitter") -> int:
    (row,) = cluster.src_exec(
        "select count(*) from pgq.subscription s join pgq.consumer co on co.co_id = s.sub_consumer"
        " where co.co_name = %s and s.sub_batch is not null",
        (consumer,),
    )
    return row[0]


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
