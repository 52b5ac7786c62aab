"""Process control through the real CLI, as an init script uses it: -d with
the shipped queue_splitter example ini, the pid file, -r / -s / -k, SIGTERM and a
double SIGINT in the middle of a batch."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


from helpers import (EXAMPLE_JOB, Driver, assert_exactly_once, driver_backends, example_ini, home_env, kill_quietly,
                     open_batches, process_alive, produce, setup_source, wait_for, wait_for_lock_wait)


def routed_event(cluster, x1: str, x2: str) -> None:
    cluster.src_exec("select pgq.insert_event('singlequeue', 'ev', 'data', %s, %s, null, null)", (x1, x2))


def test_daemon_pidfile_reload_and_stop(usecase):
    c = usecase
    env = home_env(c)
    ini = example_ini(c)
    pidfile = c.workdir / "pid" / f"{EXAMPLE_JOB}.pid"
    logfile = c.workdir / "log" / f"{EXAMPLE_JOB}.log"

    started = c.run_driver("-d", str(ini), env=env)
    assert started.returncode == 0, started.stderr
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the pidfile"))
    try:
        assert pid != started.returncode and process_alive(pid)
        # a second start is refused while the first runs
        again = c.run_driver("-d", str(ini), env=env)
        assert again.returncode == 1  # the original's status for a second instance
        assert "already running" in again.stderr and str(pid) in again.stderr
        assert int(pidfile.read_text()) == pid

        routed_event(c, "queue.event1", "queue.event2")
        c.tick()
        wait_for(lambda: len(c.target_events("queue.event1")) == 1, what="the first event to arrive")

        # -r: the changed queue_field and loop_delay apply without a restart
        ini.write_text(ini.read_text() + "queue_field = extra2\nloop_delay = 0.2\n")
        reload = c.run_driver("-r", str(ini), env=env)
        assert reload.returncode == 0, reload.stderr
        wait_for(lambda: "loop_delay 0.2 s, queue_field extra2" in logfile.read_text(), what="the reload")
        routed_event(c, "queue.event1", "queue.event2")
        c.tick()
        wait_for(lambda: len(c.target_events("queue.event2")) == 1, what="the event routed by extra2")
        assert len(c.target_events("queue.event1")) == 1
        # and the log level: at warning, batches no longer make a line
        ini.write_text(ini.read_text() + "log_level = warning\n")
        assert c.run_driver("-r", str(ini), env=env).returncode == 0
        wait_for(lambda: logfile.read_text().count("config reloaded") == 2, what="the second reload")
        lines_before = logfile.read_text().count(" applied: ")
        routed_event(c, "queue.event1", "queue.event2")
        c.tick()
        wait_for(lambda: len(c.target_events("queue.event2")) == 2, what="a batch at log level warning")

        # -s: exits after the batch, removes its pidfile
        stop = c.run_driver("-s", str(ini), env=env)
        assert stop.returncode == 0, stop.stderr
        wait_for(lambda: not process_alive(pid), what="the daemon to exit")
        assert not pidfile.exists()
        log = logfile.read_text()
        assert log.count(" applied: ") == lines_before == 2
        assert "Traceback" not in log
        # nothing left to signal
        gone = c.run_driver("-s", str(ini), env=env)
        assert gone.returncode == 0 and "WARNING" in gone.stderr and "not running" in gone.stderr
    finally:
        kill_quietly(pid)


def test_daemon_needs_pidfile(cluster):
    ini = cluster.write_ini(pidfile=None)
    result = cluster.run_driver("-d", str(ini))
    assert result.returncode == 2
    assert "daemon mode needs pidfile" in result.stderr
    assert "Traceback" not in result.stderr


def test_stale_pidfile_is_replaced_live_one_refuses(cluster):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    cluster.dst_exec("select pgq.create_queue('a')")
    ini = cluster.write_ini()
    pidfile = cluster.workdir / "pid" / "test_splitter.pid"
    pidfile.parent.mkdir()

    dead = subprocess.Popen(["true"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert "replacing stale pidfile" in cluster.log_text()
    assert not pidfile.exists()  # removed on exit

    # a pid alone proves nothing (any process may have it after a reboot):
    # what refuses a second driver is the running driver's lock on the file
    live = Driver(cluster, str(ini))
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(live.pid), what="the pidfile")
        refused = cluster.run_driver("--once", str(ini))
        assert refused.returncode == 1
        assert f"names running process {live.pid}" in refused.stderr
        assert pidfile.read_text().strip() == str(live.pid)
        # an empty pidfile key means none: this run neither checks nor writes it
        unclaimed = cluster.run_driver("--once", "--set", "pidfile=", str(ini))
        assert unclaimed.returncode == 0, unclaimed.stderr
        assert pidfile.read_text().strip() == str(live.pid)
    finally:
        live.signal(signal.SIGTERM)
        live.wait()
    assert not pidfile.exists()


def _locked_batch(cluster, n_events: int = 50):
    """A batch on the source whose apply_batch will wait: the target queues'
    event tables are locked (SHARE: no insert) by the returned connection.
    Not the consumer's row: the driver takes that one at connect too
    (take_over_position claims the consumer), so it would wait there, before
    it has taken the batch."""
    ini = setup_source(cluster, cluster.write_ini(loop_delay="0.05"), ["a", "b"])
    cluster.dst_exec("select qsplit.reset_position('test_splitter')")
    produce(cluster, ["a", "b"], per_batch=n_events, batches=1)
    lock = cluster.lock_event_tables(("a", "b"))
    return ini, lock


def test_sigterm_mid_batch_rolls_back_and_removes_pidfile(cluster):
    ini, lock = _locked_batch(cluster)
    pidfile = cluster.workdir / "pid" / "test_splitter.pid"
    driver = Driver(cluster, str(ini))
    try:
        wait_for_lock_wait(cluster)  # mid-batch: staged, apply_batch waiting
        assert pidfile.read_text().strip() == str(driver.pid)
        kill = cluster.run_driver("-k", str(ini))
        assert kill.returncode == 0, kill.stderr
        # stops at once, though the lock is still held
        assert driver.wait(timeout=10) == 0
        assert not pidfile.exists()
        assert not [b for b in _backends(cluster)], "connections left open"
        lock.rollback()
        assert cluster.target_queue_counts() == {"a": 0, "b": 0}
        assert open_batches(cluster) == 1  # the batch stays open on the source
        log = cluster.log_text()
        assert "stopped by SIGTERM" in log and "Traceback" not in log
        # the next run applies it, once
        again = cluster.run_driver("--once", str(ini))
        assert again.returncode == 0, again.stderr + cluster.log_text()
        assert_exactly_once(cluster, ["a", "b"])
    finally:
        driver.kill()
        lock.close()


def test_sigint_finishes_the_batch_then_exits(cluster):
    ini, lock = _locked_batch(cluster)
    driver = Driver(cluster, str(ini))
    try:
        wait_for_lock_wait(cluster)
        driver.signal(signal.SIGINT)
        time.sleep(0.5)
        assert driver.alive()  # still finishing its batch
        lock.rollback()
        assert driver.wait(timeout=20) == 0
        assert_exactly_once(cluster, ["a", "b"])
        assert open_batches(cluster) == 0
        assert "stop requested (SIGINT)" in cluster.log_text()
    finally:
        driver.kill()
        lock.close()


def test_second_sigint_stops_at_once(cluster):
    ini, lock = _locked_batch(cluster)
    pidfile = cluster.workdir / "pid" / "test_splitter.pid"
    driver = Driver(cluster, str(ini))
    try:
        wait_for_lock_wait(cluster)
        driver.signal(signal.SIGINT)
        time.sleep(0.1)
        driver.signal(signal.SIGINT)
        assert driver.wait(timeout=10) == 130
        assert not pidfile.exists()
        lock.rollback()
        assert cluster.target_queue_counts() == {"a": 0, "b": 0}
        assert open_batches(cluster) == 1
        assert cluster.run_driver("--once", str(ini)).returncode == 0
        assert_exactly_once(cluster, ["a", "b"])
    finally:
        driver.kill()
        lock.close()


def _backends(cluster):
    return driver_backends(cluster, "src") + driver_backends(cluster, "dst")


def test_pidfile_of_a_killed_unreaped_driver_is_stale_zombie(cluster):
    """Right after kill -9 the old driver is a zombie until its parent reaps
    it: a new run must not take it for a live driver."""
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    cluster.dst_exec("select pgq.create_queue('a')")
    ini = cluster.write_ini()
    pidfile = cluster.workdir / "pid" / "test_splitter.pid"
    pidfile.parent.mkdir()
    victim = subprocess.Popen(["sleep", "60"])
    try:
        victim.send_signal(signal.SIGKILL)
        wait_for(lambda: "\nState:\tZ" in Path(f"/proc/{victim.pid}/status").read_text(), what="a zombie")
        pidfile.write_text(f"{victim.pid}\n")
        result = cluster.run_driver("--once", str(ini))
        assert result.returncode == 0, result.stderr + cluster.log_text()
        assert "replacing stale pidfile" in cluster.log_text()
    finally:
        victim.wait()
