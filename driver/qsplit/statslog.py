"""The original's stats line, byte for byte.

Skytools' consumers log one INFO line per loop that got a batch, whose whole
message is ``{count: 5, duration: 0.0194, idle: 1.0207}`` (skytools
``send_stats``: the keys in the order they were first put, ``key: value``
joined by ``", "``, values as Python prints them, times rounded to 4
places), and ``{idle: 300.0012}`` after ``keepalive_stats`` seconds without
one.  Monitoring written for the original matches these lines, so qsplit
writes them the same way, next to its own richer line (batch id, ticks,
lag, per-queue counts).

The rules, as python-pgq's BaseConsumer keeps them:

- at the start of each attempt, when more than ``keepalive_stats`` seconds
  have passed since the idle clock was last reset, ``idle`` is that time,
  and the clock restarts;
- a batch puts ``count`` and ``duration`` (from the start of the attempt,
  next_batch included, to the end of finish_batch); a batch with events
  also puts ``idle`` (the start of the attempt minus the idle clock), and
  the idle clock restarts at its end;
- after each attempt whatever was put is logged as one line, then cleared.

Written here rather than taken from python-skytools: that package would be
a runtime dependency (and a C extension) for these forty lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class StatsLine:
    def __init__(self, keepalive: float, clock: Callable[[], float] = time.time) -> None:
        self.keepalive = keepalive
        self._clock = clock
        self._idle_start = clock()
        self._attempt_start = self._idle_start
        self._stats: dict[str, float | int] = {}

    def start(self) -> None:
        """Call before asking the source for a batch."""
        now = self._clock()
        self._attempt_start = now
        if now - self._idle_start > self.keepalive:
            self._stats["idle"] = round(now - self._idle_start, 4)
            self._idle_start = now

    def batch(self, count: int) -> None:
        """Call when a batch was finished (committed on the source)."""
        now = self._clock()
        self._stats["count"] = count
        self._stats["duration"] = round(now - self._attempt_start, 4)
        if count > 0:
            self._stats["idle"] = round(self._attempt_start - self._idle_start, 4)
            self._idle_start = now

    def text(self) -> str | None:
        """The line to log for the attempt, or None when there is nothing."""
        if not self._stats:
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in self._stats.items()) + "}"

    def send(self, log: logging.Logger) -> None:
        """Log the attempt's line (at INFO, the whole message) and clear it."""
        text = self.text()
        self._stats = {}
        if text is not None:
            log.info("%s", text)
