"""The log through the real CLI: stats lines, rotation by log_size and
log_count, logrotate moving or copy-truncating the file, one error line per
outage, the idle keepalive line."""

from __future__ import annotations

import re
import shutil

from helpers import Driver, produce, wait_for


def _setup(cluster, **keys):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    for q in ("a", "b"):
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))
    ini = cluster.write_ini(loop_delay="0.05", **keys)
    if "dst_db" not in keys:
        assert cluster.run_driver("--once", str(ini)).returncode == 0  # registers the consumer
    return ini


def test_stats_line_and_idle_keepalive(cluster):
    ini = _setup(cluster, idle_log_interval="0.3")
    driver = Driver(cluster, str(ini))
    try:
        wait_for(lambda: "idle: no batch for" in cluster.log_text(), what="the idle keepalive line")
        produce(cluster, ["a", "b"], per_batch=10, batches=1)
        wait_for(lambda: " applied: " in cluster.log_text(), what="a stats line")
    finally:
        driver.signal()
        driver.wait(timeout=15)
    line = next(line for line in cluster.log_text().splitlines() if " applied: " in line)
    assert re.search(r"\{count: 10, duration: [\d.]+, lag: [\d.]+, idle: [\d.]+\} queues: "
                     r"\{\"a\": 5, \"b\": 5\}", line), line


def test_log_rotates_by_size_and_count(cluster):
    ini = _setup(cluster, log_size="1k", log_count="2", idle_log_interval="0")
    log = cluster.workdir / "log" / "test_splitter.log"
    driver = Driver(cluster, "-v", str(ini))
    try:
        produce(cluster, ["a", "b"], per_batch=2, batches=30)  # many lines, several rotations
        wait_for(lambda: sum(cluster.target_queue_counts().values()) == 60, what="the batches")
        wait_for(lambda: log.with_name(log.name + ".2").exists(), what="two rotated files")
    finally:
        driver.signal()
        driver.wait(timeout=15)
    assert not log.with_name(log.name + ".3").exists()
    assert all(p.stat().st_size <= 1024 + 512 for p in log.parent.iterdir())


def test_log_survives_logrotate_move_and_copytruncate(cluster):
    ini = _setup(cluster, idle_log_interval="0")
    log = cluster.workdir / "log" / "test_splitter.log"
    driver = Driver(cluster, str(ini))
    try:
        produce(cluster, ["a"], per_batch=1, batches=1)
        wait_for(lambda: "ticks" in cluster.log_text(), what="a stats line")
        # logrotate, create mode: the file is moved away; the driver writes a new one
        moved = log.with_name("moved.log")
        log.rename(moved)
        size_moved = moved.stat().st_size
        produce(cluster, ["a"], per_batch=1, batches=1, start=100)
        wait_for(lambda: log.exists() and "ticks" in log.read_text(), what="a new log file")
        assert moved.stat().st_size == size_moved  # nothing more written into the moved file
        # logrotate, copytruncate mode: copy, then truncate in place
        shutil.copy(log, log.with_name("copied.log"))
        with log.open("r+") as f:
            f.truncate(0)
        produce(cluster, ["a"], per_batch=1, batches=1, start=200)
        wait_for(lambda: log.stat().st_size > 0 and "ticks" in log.read_text(), what="lines after truncate")
    finally:
        driver.signal()
        driver.wait(timeout=15)
    assert log.read_text().startswith("20")  # appended at the new end: no hole of NUL bytes
    assert "stopped by SIGTERM" in log.read_text()


def test_outage_is_logged_once_then_retried_with_backoff(cluster):
    ini = _setup(cluster, dst_db="host=127.0.0.1 port=1 dbname=nowhere")
    driver = Driver(cluster, "-v", str(ini))
    try:
        wait_for(lambda: "still failing (attempt 3)" in cluster.log_text(), timeout=30, what="three attempts")
        assert driver.alive()
    finally:
        driver.signal()
        assert driver.wait(timeout=15) == 0
    log = cluster.log_text()
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "database connection failed" in errors[0], errors
    assert "retrying in 1 s" in log and "retrying in 2 s" in log
