"""Named crash points for the fault tests.

Set QSPLIT_FAILPOINT to a comma-separated list of point names; when the
driver reaches one, it kills itself with SIGKILL, like a power cut.
``name@N`` fires on the N-th time the point is reached instead of the first
(e.g. ``after_copy@3``: two batches go through, the third one crashes).
Unset, a check is one lookup in an empty dict.
"""

from __future__ import annotations

import os
import signal

ENV = "QSPLIT_FAILPOINT"

POINTS = frozenset(
    {
        "after_next_batch",      # batch taken on the source, nothing streamed
        "mid_copy",              # first chunk of the batch sent into staging, COPY still open
        "after_copy",            # batch staged, apply_batch not called
        "before_target_commit",  # apply_batch done, target transaction open
        "after_target_commit",   # target committed, finish_batch not called
        "after_finish_batch",    # finish_batch called, source not committed
    }
)


class Failpoints:
    def __init__(self, armed: dict[str, int] | frozenset[str] | None = None) -> None:
        if armed is None:
            armed = {}
        elif not isinstance(armed, dict):
            armed = {name: 1 for name in armed}
        unknown = set(armed) - POINTS
        if unknown:
            raise ValueError(f"{ENV}: unknown failpoint(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(POINTS))}")
        bad = sorted(name for name, n in armed.items() if n < 1)
        if bad:
            raise ValueError(f"{ENV}: {', '.join(bad)}: the count after @ must be 1 or more")
        # hits still to pass before each armed point fires
        self._remaining = dict(armed)

    @classmethod
    def from_env(cls) -> "Failpoints":
        armed: dict[str, int] = {}
        for item in os.environ.get(ENV, "").split(","):
            name, _, count = item.strip().partition("@")
            if not name:
                continue
            try:
                armed[name] = int(count) if count else 1
            except ValueError:
                raise ValueError(f"{ENV}: {item.strip()!r}: expected name or name@N") from None
        return cls(armed)

    def hit(self, name: str) -> None:
        if name not in self._remaining:
            return
        self._remaining[name] -= 1
        if self._remaining[name] == 0:
            os.kill(os.getpid(), signal.SIGKILL)
