"""Connections through the real CLI: backends terminated on either side in
the middle of a run, connection_lifetime, connect_timeout and keepalives,
passwords kept out of the log."""

from __future__ import annotations

import re

from helpers import (Driver, assert_exactly_once, driver_backends, open_batches, produce, setup_source,
                     terminate_backend, wait_for, wait_for_lock_wait)

QUEUES = ["a", "b", "c"]


def _setup(cluster, **keys):
    return setup_source(cluster, cluster.write_ini(loop_delay="0.05", **keys), QUEUES)


def _terminate(cluster, side: str, pid: int, must: bool = True) -> None:
    done = terminate_backend(cluster, pid)
    assert done or not must, f"{side} backend {pid} was not there to terminate"


def _all_applied(cluster) -> bool:
    return sum(cluster.target_queue_counts().values()) == len(cluster.source_events())


def test_terminated_backends_mid_batch_on_either_side(cluster):
    ini = _setup(cluster)
    cluster.dst_exec("select qsplit.reset_position('test_splitter')")
    driver = Driver(cluster, str(ini))
    try:
        # target side, mid-batch: apply_batch waits on the locked position row
        lock = cluster.dst()
        lock.autocommit = False
        lock.cursor().execute("select 1 from qsplit.consumer where consumer_name = 'test_splitter' for update")
        produce(cluster, QUEUES, per_batch=300, batches=2)
        _terminate(cluster, "dst", wait_for_lock_wait(cluster))
        lock.rollback()
        wait_for(lambda: _all_applied(cluster), what="the batches after the target backend died")

        # source side, mid-batch: the target commit waits on the lock, the
        # source backend dies; the batch is then found applied and skipped
        lock.cursor().execute("select 1 from qsplit.consumer where consumer_name = 'test_splitter' for update")
        produce(cluster, QUEUES, per_batch=300, batches=2, start=600)
        wait_for_lock_wait(cluster)
        src_pids = [pid for pid, _, _ in driver_backends(cluster, "src")]
        assert src_pids
        for pid in src_pids:
            _terminate(cluster, "src", pid)
        lock.rollback()
        wait_for(lambda: _all_applied(cluster) and open_batches(cluster) == 0, what="the batches after the source died")

        # and while events flow, both sides at once
        produce(cluster, QUEUES, per_batch=100, batches=3, start=1200)
        for side in ("src", "dst"):
            for pid, _, _ in driver_backends(cluster, side):
                _terminate(cluster, side, pid, must=False)  # the other may be closing already
        produce(cluster, QUEUES, per_batch=100, batches=3, start=1500)
        wait_for(lambda: _all_applied(cluster) and open_batches(cluster) == 0, what="the last batches")
        assert driver.alive(), "the driver must not exit on a lost connection"
    finally:
        driver.signal()
        driver.wait(timeout=15)
        driver.kill()
    assert_exactly_once(cluster, QUEUES)
    log = cluster.log_text()
    assert "recovered after" in log
    assert "Traceback" not in log
    # an error is logged once per outage, not once per retry
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert 1 <= len(errors) <= 6, errors


def test_connection_lifetime_reconnects(cluster):
    ini = _setup(cluster, connection_lifetime="0.3")
    driver = Driver(cluster, str(ini))
    try:
        first = wait_for(lambda: driver_backends(cluster, "dst"), what="the driver's target session")[0][0]
        wait_for(lambda: "connection_lifetime (0.3 s) reached: reconnecting" in cluster.log_text(),
                 what="a reconnect")
        wait_for(lambda: driver_backends(cluster, "dst") and driver_backends(cluster, "dst")[0][0] != first,
                 what="a new target session")
        produce(cluster, QUEUES, per_batch=50, batches=2)
        wait_for(lambda: _all_applied(cluster), what="the batches")
    finally:
        driver.signal()
        driver.wait(timeout=15)
    assert_exactly_once(cluster, QUEUES)


def test_timeouts_and_keepalives_added_unless_set_and_passwords_hidden(cluster):
    secret = "s3cr3t-pw"
    ini = cluster.write_ini(
        src_db=f"{cluster.src_dsn} password={secret}",
        dst_db=f"{cluster.dst_dsn} password='{secret}' keepalives_idle=7 connect_timeout=4",
    )
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    cluster.dst_exec("select pgq.create_queue('a')")
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    produce(cluster, ["a"], per_batch=3, batches=1)
    result = cluster.run_driver("-vv", "--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    log = cluster.log_text()
    lines = [line for line in log.splitlines() if "connecting:" in line]
    src_line = next(line for line in lines if cluster.src_dsn.split("dbname=")[1] in line)
    dst_line = next(line for line in lines if cluster.dst_dsn.split("dbname=")[1] in line)
    assert re.search(r"connect_timeout=15 keepalives=1 keepalives_idle=60 keepalives_interval=10", src_line)
    assert "keepalives_idle=7" in dst_line and "connect_timeout=4" in dst_line
    assert "keepalives_idle=60" not in dst_line and "connect_timeout=15" not in dst_line
    assert "qsplit.apply_batch(" in log  # -vv: the statements
    assert len(cluster.target_events("a")) == 3
    # a wrong host fails within connect_timeout and never shows the password
    bad = cluster.write_ini(name="bad.ini", src_db=f"host=10.255.255.1 connect_timeout=1 password={secret}")
    failed = cluster.run_driver("-vv", "--once", str(bad), timeout=30)
    assert failed.returncode == 1
    everything = cluster.log_text() + result.stderr + failed.stderr
    assert "database connection failed" in everything
    assert secret not in everything
    status = cluster.run_driver("--status", str(ini))
    assert secret not in status.stdout + status.stderr
