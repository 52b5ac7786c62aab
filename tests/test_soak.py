"""A short soak inside make test: pgqd ticking, a producer inserting
through pgq.logutriga, the driver killed with SIGKILL again and again.
(`make soak` runs the long one.)"""

from __future__ import annotations

import os
import random

import pytest

import soak


@pytest.mark.slow
@pytest.mark.parametrize("read_ahead", [False, True], ids=["sequential", "read_ahead"])
def test_short_soak_kills_lose_and_double_nothing(cluster, read_ahead):
    seconds = float(os.environ.get("QSPLIT_SHORT_SOAK_SECONDS", "20"))
    seed = random.SystemRandom().randrange(10**6)
    report = soak.run(cluster.src_dsn, cluster.dst_dsn, cluster.workdir, seconds, seed, read_ahead=read_ahead)
    summary = "\n".join([f"seed {seed}, read_ahead {read_ahead}"] + report.lines())
    assert report.kills >= seconds / 5, summary
    assert report.ticks > seconds and report.batches_applied > seconds, summary  # pgqd ticked
    assert report.produced > 1000 and report.moved == report.produced, summary
    assert (report.lost, report.duplicated, report.reordered_queues) == (0, 0, 0), summary
    assert report.ok, summary
