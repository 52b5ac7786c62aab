"""Helpers for the routing, hostile-input and privilege tests: set up the
source queue and consumer, produce events by routing value, run the driver
expecting success, and wait for a condition."""

from __future__ import annotations

import time

from helpers import EVENT_FIELDS

CONSUMER = "test_splitter"
OPEN_BATCHES = (
    "select count(*) from pgq.subscription s join pgq.consumer co on co.co_id = s.sub_consumer"
    " where co.co_name = %s and s.sub_batch is not null"
)


def setup_source(cluster, ini):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    first = cluster.run_driver("--once", str(ini))  # registers the consumer
    assert first.returncode == 0, first.stderr + cluster.log_text()


def produce(cluster, routes: list[str | None], tick: bool = True) -> None:
    """One event per entry, its ev_extra1 the entry; every other field is
    distinct so misrouted or doubled events show."""
    conn = cluster.src()
    with conn.cursor() as cur:
        for i, route in enumerate(routes):
            cur.execute(
                "select pgq.insert_event('singlequeue', %s, %s, %s, %s, NULL, %s)",
                (f"t{i}", f"data {i}", route, f"x2 {i}", f"x4 {i}"),
            )
    if tick:
        cluster.tick()


def source_by_route(cluster) -> dict:
    out: dict = {}
    for ev in cluster.source_events():
        out.setdefault(ev[1 + EVENT_FIELDS.index("ev_extra1")], []).append(ev[1:])
    return out


def run_ok(cluster, ini):
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert cluster.src_exec(OPEN_BATCHES, (CONSUMER,)) == [(0,)]
    return result


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
