"""Where a Splitter's time goes, batch step by batch step (bench --phases).

Wraps the methods of one Splitter's Source and Target objects (not the
classes) with timers; the added cost is two clock reads per call.

This is the one place the bench reaches inside the driver: STEPS below
names every internal it times.  Everything else runs the driver through
its public entry points (qsplit-driver; qsplit.config.load and
qsplit.splitter.Splitter in process; qsplit.install for the schema)."""

from __future__ import annotations

import time
from collections import Counter

# (object attribute, method): what each step of the loop calls
STEPS = (
    ("source", "next_batch"),   # pgq.next_batch_custom + batch_event_sql, one round trip
    ("target", "copy_in"),      # COPY into staging, waiting on the source thread's COPY out
    ("source", "copy_out"),     # the batch query and COPY out (helper thread, overlaps copy_in)
    ("target", "apply_batch"),  # qsplit.apply_batch
    ("target", "commit"),       # target commit: events + position, one WAL flush
    ("source", "finish_batch"),
    ("source", "commit"),       # source commits: after next_batch, and after finish_batch (synchronous_commit off)
)


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def attach(self, splitter) -> None:
        """Time *splitter*'s steps.  With read_ahead, the second target
        session counts under the same labels, the read-ahead consumer's
        round trip (finish + move + next batch) as read_ahead.take, and the
        steps of two batches overlap: their seconds add up to more than the
        run's."""
        for side, name in STEPS:
            for attr in (side, "target2") if side == "target" else (side,):
                obj = getattr(splitter, attr, None)
                if obj is not None:
                    setattr(obj, name, self._timed(f"{side}.{name}", getattr(obj, name)))
        pipeline = getattr(splitter, "pipeline", None)
        if pipeline is not None:
            pipeline.source.take = self._timed("read_ahead.take", pipeline.source.take)

    def _timed(self, label: str, fn):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1
        return timed

    def figures(self) -> dict[str, float]:
        return {label: round(s, 4) for label, s in self.seconds.most_common()}
