"""read_ahead = 1: batch N+1 streams into a second target session while the
target applies batch N, through a second consumer on the source.  The
fault matrix again, with the pipeline on: every crash point at several
moments, terminated connections, a server restart, several drivers, event
table rotation, the batch_collect case.  After each: every target queue holds
exactly its source events (all fields, source order), and the source shows
the two consumers where a DBA expects them."""

from __future__ import annotations

import random
import time

import pytest

from helpers import (
    SOURCE_QUEUE,
    Driver,
    drivers_running,
    assert_exactly_once,
    create_queues,
    driver_backends,
    produce,
    terminate_backend,
    wait_for,
)
from qsplit.failpoints import POINTS

TARGETS = ["ra.a", "ra.b", "ra.c"]
CONSUMER = "test_splitter"
AHEAD = CONSUMER + ".read_ahead"
TRACEBACK = "Traceback"


def _consumers(cluster) -> dict[str, tuple]:
    """{consumer: (last_tick, current_batch)} on the source queue."""
    rows = cluster.src_exec(
        "select consumer_name, last_tick, current_batch from pgq.get_consumer_info(%s)", (SOURCE_QUEUE,))
    return {name: (tick, batch) for name, tick, batch in rows}


def _last_tick(cluster) -> int:
    return cluster.src_exec("select last_tick_id from pgq.get_queue_info(%s)", (SOURCE_QUEUE,))[0][0]


def _target_tick(cluster) -> int | None:
    rows = cluster.dst_exec("select last_tick_id from qsplit.consumer where consumer_name = %s", (CONSUMER,))
    return rows[0][0] if rows else None


def drained(cluster) -> bool:
    """The target has every tick, the real consumer is there and holds no
    batch, the read-ahead consumer has no batch open either."""
    last = _last_tick(cluster)
    c = _consumers(cluster)
    return (_target_tick(cluster) == last and c.get(CONSUMER) == (last, None)
            and AHEAD in c and c[AHEAD][1] is None)


def _start(cluster, **keys: str):
    create_queues(cluster, TARGETS)
    ini = cluster.write_ini(**{"loop_delay": "0.05", "read_ahead": "1", **keys})
    first = cluster.run_driver("--once", str(ini))
    assert first.returncode == 0, first.stderr + cluster.log_text()
    return ini


def test_read_ahead_moves_every_batch_once_and_leaves_two_sensible_consumers(cluster):
    ini = _start(cluster)
    for b in range(8):
        produce(cluster, TARGETS, 500, start=b * 500, pad=200)
    done = cluster.run_driver("--once", str(ini))
    assert done.returncode == 0, done.stderr + cluster.log_text()
    assert assert_exactly_once(cluster, TARGETS) == 8 * 500
    # both consumers at the queue's last tick, no batch open: the real one
    # was moved there only after the target committed it
    assert drained(cluster), _consumers(cluster)
    log = cluster.log_text()
    assert log.count(" applied: {count: 500,") == 8, log
    assert f"read_ahead: consumer '{AHEAD}' reads ahead" in log
    assert TRACEBACK not in log + done.stderr


def test_turning_read_ahead_off_unregisters_the_read_ahead_consumer(cluster):
    ini = _start(cluster)
    produce(cluster, TARGETS, 100, start=0)
    assert AHEAD in _consumers(cluster)
    off = cluster.run_driver("--once", "--set", "read_ahead=0", str(ini))
    assert off.returncode == 0, off.stderr + cluster.log_text()
    # left registered it would keep the source's events for ever
    assert set(_consumers(cluster)) == {CONSUMER}
    assert "unregistered the read-ahead consumer" in cluster.log_text()
    assert assert_exactly_once(cluster, TARGETS) == 100


def test_unregister_drops_the_read_ahead_consumer_too(cluster):
    ini = _start(cluster)
    assert set(_consumers(cluster)) == {CONSUMER, AHEAD}
    done = cluster.run_driver("--unregister", str(ini))
    assert done.returncode == 0, done.stderr
    assert _consumers(cluster) == {}
    assert f"read-ahead consumer '{AHEAD}'" in done.stdout + done.stderr


# every crash point, at several moments of the pipeline ------------------------------
@pytest.mark.parametrize("hit", [1, 2, 4])
@pytest.mark.parametrize("point", sorted(POINTS))
def test_crash_at_failpoint_with_read_ahead_then_restart_moves_exactly_once(cluster, point, hit):
    ini = _start(cluster)
    for b in range(6):
        produce(cluster, TARGETS, 600, start=b * 600, pad=300)
    crashed = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": f"{point}@{hit}"})
    assert crashed.returncode == -9, crashed.stderr + cluster.log_text()  # SIGKILL, like a power cut
    # what the crash kept is whole batches, in order, never more than the
    # target committed; the real consumer is never ahead of the target
    applied = _target_tick(cluster)
    real_tick = _consumers(cluster)[CONSUMER][0]
    assert applied is None or real_tick <= applied
    assert sum(cluster.target_queue_counts().values()) % 600 == 0

    again = cluster.run_driver("--once", str(ini))
    assert again.returncode == 0, again.stderr + cluster.log_text()
    assert drained(cluster), _consumers(cluster)
    assert assert_exactly_once(cluster, TARGETS) == 6 * 600
    assert TRACEBACK not in cluster.log_text() + again.stderr


def test_crash_after_target_commit_with_batch_collect_moves_the_consumer_up(cluster):
    """pgq_batch_collect_events: a batch taken again from the real
    consumer's position could cover other ticks than the committed one (the
    QS001 case); sync starts from the target's tick instead."""
    ini = _start(cluster, pgq_batch_collect_events="900")
    for b in range(8):
        produce(cluster, TARGETS, 500, start=b * 500)
    crashed = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": "after_target_commit@1"})
    assert crashed.returncode == -9, crashed.stderr + cluster.log_text()
    assert _consumers(cluster)[CONSUMER][0] < _target_tick(cluster)
    again = cluster.run_driver("--once", str(ini))
    assert again.returncode == 0, again.stderr + cluster.log_text()
    assert "the target's position" in cluster.log_text()
    assert drained(cluster), _consumers(cluster)
    assert assert_exactly_once(cluster, TARGETS) == 8 * 500
    assert "lost its position" not in cluster.log_text()


# lost connections, restarts, several drivers ---------------------------------------------
@pytest.mark.parametrize("copy_format", ["auto", "text"])
def test_terminated_connections_with_read_ahead_complete_exactly_once(cluster, copy_format):
    """In both COPY formats (auto is binary here: one major)."""
    seed = random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    ini = _start(cluster, copy_format=copy_format)
    driver = Driver(cluster, str(ini))
    produced = 0
    try:
        wait_for(lambda: driver_backends(cluster, "src") and len(driver_backends(cluster, "dst")) == 2, 30,
                 "the driver to connect (one source, two target sessions)")
        for round_ in range(8):
            n = rng.randint(2000, 20000)
            for _ in range(3):
                produce(cluster, TARGETS, n // 3, start=produced, pad=rng.choice([0, 200]))
                produced += n // 3
            time.sleep(rng.uniform(0, 0.3))  # idle, reading ahead, applying, committing
            side = ("src", "dst")[round_ % 2]
            pids = [b.pid for b in driver_backends(cluster, side)]
            # one target session or the source: the other session's batch
            # must not go through alone
            for pid in pids[:1] if side == "dst" else pids:
                terminate_backend(cluster, pid, side)
            produce(cluster, TARGETS, 10, start=produced)
            produced += 10
            wait_for(lambda: drained(cluster), 60, f"the driver to reconnect and drain (seed {seed})")
        assert driver.alive(), driver.stderr()
    finally:
        driver.stop()
    log = cluster.log_text()
    assert "retrying in" in log
    assert assert_exactly_once(cluster, TARGETS) == produced, seed
    assert TRACEBACK not in log + driver.stderr()


@pytest.mark.parametrize("n_drivers", [2, 3])
def test_several_read_ahead_drivers_on_one_consumer(cluster, n_drivers):
    ini = _start(cluster, loop_delay="0.02")
    produced = 0
    for _ in range(6):
        produce(cluster, TARGETS, 3000, start=produced)
        produced += 3000
    with drivers_running(cluster, n_drivers, "--set", "pidfile=", str(ini)) as drivers:
        for _ in range(8):
            produce(cluster, TARGETS, 1500, start=produced)
            produced += 1500
            time.sleep(0.05)
        wait_for(lambda: drained(cluster), 120, "the drivers to drain the queue")
        assert all(d.alive() for d in drivers), [d.stderr() for d in drivers]
    log = cluster.log_text()
    assert assert_exactly_once(cluster, TARGETS) == produced
    # every batch applied once, whichever driver did it; a driver that read
    # a batch another one had applied read on, with no error
    assert log.count(" applied: {count:") == 14, log
    assert TRACEBACK not in log and "ERROR" not in log and "lost its position" not in log, log
