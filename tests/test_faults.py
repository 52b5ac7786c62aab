"""The fault matrix: the real driver crashed at every failpoint, its
connections terminated, the target server restarted, several drivers on one
consumer, event tables rotated under it, one huge batch.  After each, every
target queue holds exactly its source events (all fields, source order)."""

from __future__ import annotations

import logging
import os
import random
import time

import pytest

from helpers import (
    SOURCE_QUEUE,
    TWO_SERVERS,
    Driver,
    drivers_running,
    Ledger,
    assert_exactly_once,
    create_queues,
    drained,
    driver_backends,
    open_batches,
    produce,
    produce_bulk,
    queue_digests,
    restart_server,
    source_by_route,
    terminate_backend,
    wait_for,
)
from qsplit.failpoints import POINTS

# also run on every other supported PostgreSQL major, and with source and
# target on the oldest and the newest (make test-matrix)
pytestmark = [pytest.mark.matrix, pytest.mark.mixed]

TARGETS = ["fault.a", "fault.b", "fault.c", "fault.d"]
SKIPPED = "skipped, already applied on the target"


def _seed() -> int:
    return int(os.environ.get("QSPLIT_FAULT_SEED") or random.SystemRandom().randrange(10**6))


def _start(cluster, loop_delay: str = "0.05"):
    """Queues on both sides, the consumer registered; returns the ini."""
    create_queues(cluster, TARGETS)
    ini = cluster.write_ini(loop_delay=loop_delay)
    first = cluster.run_driver("--once", str(ini))
    assert first.returncode == 0, first.stderr + cluster.log_text()
    return ini


# the crash points ------------------------------------------------------------------
PER_BATCH = 1000  # with the padding ~330 KiB a batch: more than one COPY chunk
BATCHES = 5
CRASH_AT = 3       # the batch whose processing is crashed
# crash points after which the target holds the crashed batch
TARGET_HAS_IT = {"after_target_commit", "after_finish_batch"}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_crash_at_failpoint_then_restart_moves_exactly_once(cluster, point):
    ini = _start(cluster)
    for b in range(BATCHES):
        produce(cluster, TARGETS, PER_BATCH, start=b * PER_BATCH, pad=300)

    crashed = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": f"{point}@{CRASH_AT}"})
    assert crashed.returncode == -9, crashed.stderr + cluster.log_text()  # SIGKILL, like a power cut

    # what the crash kept: whole batches on the target, the crashed one open on the source
    kept = CRASH_AT if point in TARGET_HAS_IT else CRASH_AT - 1
    assert sum(cluster.target_queue_counts().values()) == kept * PER_BATCH
    first_batches = {q: evs[: kept * PER_BATCH // len(TARGETS)] for q, evs in source_by_route(cluster).items()}
    assert_exactly_once(cluster, TARGETS, first_batches)
    assert open_batches(cluster) == 1
    assert cluster.log_text().count(" applied: {count: 1000,") == CRASH_AT - 1

    again = cluster.run_driver("--once", str(ini))
    assert again.returncode == 0, again.stderr + cluster.log_text()
    assert drained(cluster)
    assert assert_exactly_once(cluster, TARGETS) == BATCHES * PER_BATCH
    log = cluster.log_text()
    if point in TARGET_HAS_IT:
        assert log.count(SKIPPED) == 1
    else:
        assert SKIPPED not in log
    assert "Traceback" not in log + again.stderr


PIPELINE_ORDER = ["after_next_batch", "mid_copy", "after_copy", "before_target_commit",
                  "after_target_commit", "after_finish_batch"]


def test_crash_at_every_point_in_turn_then_drain(cluster):
    assert set(PIPELINE_ORDER) == POINTS
    ini = _start(cluster)
    for b in range(14):
        produce(cluster, TARGETS, 400, start=b * 400, pad=700)
    for point in PIPELINE_ORDER + PIPELINE_ORDER[::-1]:
        crashed = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": f"{point}@2"})
        assert crashed.returncode == -9, (point, crashed.stderr + cluster.log_text())
        assert open_batches(cluster) == 1
    again = cluster.run_driver("--once", str(ini))
    assert again.returncode == 0, again.stderr + cluster.log_text()
    assert drained(cluster)
    assert assert_exactly_once(cluster, TARGETS) == 14 * 400


def test_failpoints_unset_do_nothing_and_bad_names_are_refused(cluster):
    ini = _start(cluster)
    produce(cluster, TARGETS, 10, start=0)
    bad = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": "after_kopy"})
    assert bad.returncode == 2 and "unknown failpoint" in bad.stderr and "after_copy" in bad.stderr
    for value in ("after_copy@x", "after_copy@0"):
        bad = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": value})
        assert bad.returncode == 2 and "QSPLIT_FAILPOINT" in bad.stderr, bad.stderr
    assert cluster.target_queue_counts() == {q: 0 for q in TARGETS}
    ok = cluster.run_driver("--once", str(ini), env={"QSPLIT_FAILPOINT": ""})
    assert ok.returncode == 0
    assert_exactly_once(cluster, TARGETS)


# lost connections --------------------------------------------------------------------
def test_terminated_connections_at_random_moments_complete_exactly_once(cluster):
    seed = _seed()
    rng = random.Random(seed)
    ini = _start(cluster)
    driver = Driver(cluster, str(ini))
    kills = {"src": 0, "dst": 0}
    produced = 0

    def backends() -> set[tuple[str, int]]:
        # (side, pid): source and target may be two servers with clashing pids
        return {(side, b.pid) for side in ("src", "dst") for b in driver_backends(cluster, side)}

    def connected_anew(before: set[tuple[str, int]]) -> bool:
        now = backends()
        return {side for side, _ in now} == {"src", "dst"} and not now & before

    try:
        wait_for(lambda: connected_anew(set()), 30, "the driver to connect")
        for round_ in range(12):
            n = rng.randint(2000, 30000)
            produce(cluster, TARGETS, n, start=produced, pad=rng.choice([0, 200]))
            produced += n
            side = ("src", "dst")[round_ % 2]
            time.sleep(rng.uniform(0, 0.4))  # a random moment: idle, reading, applying, committing
            before = backends()
            kills[side] += sum(terminate_backend(cluster, b.pid, side) for b in driver_backends(cluster, side))
            # a small batch makes an idle driver use both connections; then it
            # must have reconnected (both sides anew) and moved everything
            produce(cluster, TARGETS, 10, start=produced)
            produced += 10
            wait_for(lambda: drained(cluster) and connected_anew(before), 60,
                       f"the driver to reconnect and drain (seed {seed})")
        assert driver.alive(), driver.stderr()
    finally:
        driver.stop()
    log = cluster.log_text()
    assert kills == {"src": 6, "dst": 6}, (seed, kills)
    # each lost connection was noticed, both closed, and the work retried
    assert log.count("retrying in") == sum(kills.values()), (seed, kills, log)
    assert assert_exactly_once(cluster, TARGETS) == produced, seed
    assert "Traceback" not in log + driver.stderr()


# one server: restart it (both sides at once); two servers
# (QSPLIT_TEST_TARGET_PORT): restart one of them at a time
RESTARTS = ["source", "target"] if TWO_SERVERS else ["both"]


@pytest.mark.parametrize("read_ahead", ["0", "1"])
@pytest.mark.parametrize("server", RESTARTS)
def test_target_server_restart_during_a_run(cluster, server, read_ahead):
    """Restarts a server under the running driver: it loses that side's
    connections, reconnects, and completes exactly once."""
    _start(cluster)  # registers the consumer
    ini = cluster.write_ini(loop_delay="0.05", read_ahead=read_ahead)
    side = "dst" if server == "target" else "src"
    driver = Driver(cluster, str(ini))
    produced = 0
    try:
        for b in range(6):
            produce(cluster, TARGETS, 3000, start=produced)
            produced += 3000
            if b == 2:
                wait_for(lambda: driver_backends(cluster, "dst"), 30, "the driver's target connection")
                restart_server(cluster.src_dsn if side == "src" else cluster.dst_dsn)
                restarted = cluster.src_exec if side == "src" else cluster.dst_exec
                wait_for(lambda: restarted("select 1"), 60, "the server to accept connections")
        wait_for(lambda: drained(cluster), 90, "the driver to drain the queue")
        assert driver.alive(), driver.stderr()
    finally:
        driver.stop()
    log = cluster.log_text()
    assert "database connection failed" in log and "retrying in" in log
    assert assert_exactly_once(cluster, TARGETS) == produced


# several drivers on one consumer -------------------------------------------------------
@pytest.mark.parametrize("n_drivers", [2, 3])
def test_drivers_started_at_once_on_one_consumer(cluster, n_drivers):
    ini = _start(cluster, loop_delay="0.02")
    produced = 0
    for _ in range(8):  # a backlog they all reach for at once
        produce(cluster, TARGETS, 4000, start=produced)
        produced += 4000
    # hold the consumer's position row, so every driver takes the first batch
    # and waits for it in apply_batch
    holder = cluster.dst()
    holder.autocommit = False
    with holder.cursor() as cur:
        cur.execute("insert into qsplit.consumer (consumer_name) values ('test_splitter')"
                    " on conflict do nothing returning consumer_name")
        cur.execute("select 1 from qsplit.consumer where consumer_name = 'test_splitter' for update")
    # no pid file: it would stop a second driver on this host, and the case
    # is drivers on several hosts (or ini files) sharing one consumer name
    with drivers_running(cluster, n_drivers, "--set", "pidfile=", str(ini)) as drivers:
        wait_for(lambda: len(_waiting_on_lock(cluster)) == n_drivers, 30, "every driver to wait in apply_batch")
        holder.commit()
        for _ in range(6):  # and more while they run, each once they have moved on
            applied = _target_position(cluster)
            produce(cluster, TARGETS, 2000, start=produced)
            produced += 2000
            wait_for(lambda: _target_position(cluster) != applied, 60, "the drivers to apply another batch")
        wait_for(lambda: drained(cluster), 90, "the drivers to drain the queue")
        assert all(d.alive() for d in drivers), [d.stderr() for d in drivers]
    log = cluster.log_text()
    assert assert_exactly_once(cluster, TARGETS) == produced
    # every batch was applied once; the drivers that also had it say they skipped it
    assert log.count(" applied: {count:") == 14, log
    # the first batch: one driver applied it, every other one (by pid) waited
    # for it and then skipped it (PgQ may hand two batch ids out for the same
    # ticks to drivers calling next_batch at once: the ticks are what counts)
    first = [line.split() for line in log.splitlines() if "(ticks 1..2)" in line]
    appliers = {words[2] for words in first if " ".join(words).count(" applied: {count: 4000,")}
    skippers = {words[2] for words in first if SKIPPED in " ".join(words)}
    pids = {str(d.pid) for d in drivers}
    assert len(appliers) == 1 and appliers <= pids and pids - appliers <= skippers, first
    assert "ERROR" not in log and "lost its position" not in log and "Traceback" not in log, log


def _target_position(cluster) -> int | None:
    rows = cluster.dst_exec("select last_tick_id from qsplit.consumer where consumer_name = 'test_splitter'")
    return rows[0][0] if rows else None


def _waiting_on_lock(cluster) -> list[int]:
    return [
        pid
        for (pid,) in cluster.dst_exec(
            "select pid from pg_stat_activity where application_name = 'qsplit-driver test_splitter'"
            " and datname = current_database() and wait_event_type = 'Lock'"
        )
    ]


# event-table rotation ----------------------------------------------------------------
ROTATIONS = 4  # one more than the 3 event tables: the first one is truncated again


def _rotate(conn_exec, queues: list[str], catch_up, timeout: float = 30) -> None:
    """Rotate the event tables of *queues* once, as pgqd's maintenance does
    (step1, then step2 in a separate transaction).  PgQ refuses step1 while
    a consumer may still read the previous table: *catch_up* lets them move."""
    before = _switch_times(conn_exec, queues)
    deadline = time.monotonic() + timeout
    while True:
        pending = [q for q, t in _switch_times(conn_exec, queues).items() if t == before[q]]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"queues {pending} did not rotate within {timeout:.0f} s")
        for q in pending:
            conn_exec("select pgq.maint_rotate_tables_step1(%s)", (q,))
        conn_exec("select pgq.maint_rotate_tables_step2()")
        if [q for q, t in _switch_times(conn_exec, queues).items() if t == before[q]]:
            catch_up()
            time.sleep(0.05)


def _switch_times(conn_exec, queues: list[str]) -> dict[str, object]:
    return dict(conn_exec("select queue_name, queue_switch_time from pgq.queue where queue_name = any(%s)", (queues,)))


def _read_target(cluster, queues: list[str], got: dict[str, list[tuple]]) -> None:
    """Drain each target queue through a PgQ consumer 'reader', as a batch
    server would (so target rotation may truncate what was read)."""
    for q in queues:
        while True:
            cluster.dst_exec("select pgq.force_tick(%s); select pgq.ticker(%s)", (q, q))
            (batch_id,) = cluster.dst_exec("select pgq.next_batch(%s, 'reader')", (q,))[0]
            if batch_id is None:
                break
            events = cluster.dst_exec(
                "select ev_time, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4"
                "  from pgq.get_batch_events(%s) order by ev_id", (batch_id,))
            cluster.dst_exec("select pgq.finish_batch(%s)", (batch_id,))
            got[q].extend(events)
            if not events:
                break


def test_event_table_rotation_on_both_sides_during_a_run(cluster):
    ini = _start(cluster)
    for q in TARGETS:
        cluster.dst_exec("select pgq.register_consumer(%s, 'reader')", (q,))
        cluster.dst_exec("select pgq.set_queue_config(%s, 'rotation_period', '0')", (q,))
    cluster.src_exec("select pgq.set_queue_config(%s, 'rotation_period', '0')", (SOURCE_QUEUE,))
    ledger = Ledger()
    got: dict[str, list[tuple]] = {q: [] for q in TARGETS}
    driver = Driver(cluster, str(ini))

    def source_catch_up() -> None:
        cluster.tick()
        wait_for(lambda: drained(cluster), 30, "the driver to drain the queue")

    produced = 0
    try:
        for _ in range(ROTATIONS):
            # half a batch, rotate the source under it, the other half, one tick
            produce(cluster, TARGETS, 700, start=produced, tick=False)
            ledger.record(cluster)
            _rotate(cluster.src_exec, [SOURCE_QUEUE], source_catch_up)
            produce(cluster, TARGETS, 700, start=produced + 700)
            produced += 1400
            ledger.record(cluster)
            _read_target(cluster, TARGETS, got)
            _rotate(cluster.dst_exec, TARGETS, lambda: _read_target(cluster, TARGETS, got))
        wait_for(lambda: drained(cluster), 60, "the driver to drain the queue")
        assert driver.alive(), driver.stderr()
    finally:
        driver.stop()
    _read_target(cluster, TARGETS, got)
    assert len(ledger.events) == produced
    # the tables went round and PgQ truncated tables that had been read: on
    # the source behind the driver, on the target behind the reader
    assert len(cluster.source_events()) < produced
    assert all(len(cluster.target_events(q)) < len(got[q]) for q in TARGETS)
    assert assert_exactly_once(cluster, TARGETS, ledger.by_queue(), got=got) == produced
    assert "Traceback" not in cluster.log_text()


# one huge batch ----------------------------------------------------------------------------
MILLION = 1_000_000
RSS_LIMIT_KIB = 100 * 1024


@pytest.mark.slow
def test_a_million_events_in_one_batch_in_flat_memory(cluster):
    ini = _start(cluster)
    produce_bulk(cluster, TARGETS, MILLION)  # the ticker stopped: a backlog ...
    cluster.tick()                           # ... then one tick, one batch
    driver = Driver(cluster, "--once", str(ini))
    returncode, peak_rss_kib = driver.wait_watching_rss(timeout=600)
    assert returncode == 0, driver.stderr() + cluster.log_text()

    log = cluster.log_text()
    assert log.count(" applied: {count: 1000000,") == 1, log
    source = queue_digests(cluster.src_dsn, SOURCE_QUEUE, by_route=True)
    assert sum(n for n, _ in source.values()) == MILLION
    for q in TARGETS:
        assert queue_digests(cluster.dst_dsn, q) == {None: source[q]}, q
    logging.getLogger(__name__).info("1M events in one batch: driver peak RSS %d KiB", peak_rss_kib)
    assert 0 < peak_rss_kib < RSS_LIMIT_KIB, peak_rss_kib
