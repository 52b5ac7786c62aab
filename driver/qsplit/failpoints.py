"""Named crash points for the fault tests.

Set QSPLIT_FAILPOINT to a comma-separated list of point names; when the
driver reaches one, it kills itself with SIGKILL, like a power cut.  Unset,
a check is one frozenset lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "QSPLIT_FAILPOINT"

POINTS = frozenset(
    {
        "after_next_batch",      # batch taken on the source, nothing streamed
        "mid_copy",              # part of the batch streamed into staging
        "after_copy",            # batch staged, apply_batch not called
        "before_target_commit",  # apply_batch done, target transaction open
        "after_target_commit",   # target committed, finish_batch not called
        "after_finish_batch",    # finish_batch called, source not committed
    }
)


class Failpoints:
    def __init__(self, armed: frozenset[str] = frozenset()) -> None:
        unknown = armed - POINTS
        if unknown:
            raise ValueError(f"{ENV}: unknown failpoint(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(POINTS))}")
        self._armed = armed

    @classmethod
    def from_env(cls) -> "Failpoints":
        value = os.environ.get(ENV, "")
        return cls(frozenset(p.strip() for p in value.split(",") if p.strip()))

    def hit(self, name: str) -> None:
        if name in self._armed:
            os.kill(os.getpid(), signal.SIGKILL)
