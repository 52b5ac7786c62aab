"""Where a Splitter's time goes, batch step by batch step (bench --phases).

Wraps the methods of one Splitter's Source and Target objects (not the
classes) with timers; the added cost is two clock reads per call."""

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
        for side, name in STEPS:
            obj = getattr(splitter, side)
            setattr(obj, name, self._timed(f"{side}.{name}", getattr(obj, name)))

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
