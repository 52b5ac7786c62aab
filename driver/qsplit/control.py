"""Signals, as the loop sees them.

- SIGHUP: reload the config before the next batch.
- SIGINT: finish the batch in progress, then stop (exit 0).  A second SIGINT
  within a second stops at once, like SIGTERM.
- SIGTERM: stop at once: the handler raises Terminate wherever the loop is;
  the open target transaction is rolled back when its connection closes, so
  nothing is half-applied, and the batch stays open on the source.

The handlers only set flags (or raise Terminate); the loop's sleep waits on
a wakeup pipe, so a signal ends the sleep at once.
"""

from __future__ import annotations

import os
import select
import signal
import time
from types import FrameType


class Terminate(BaseException):
    """Stop now (SIGTERM, or a second SIGINT).  A BaseException, so that
    error handling meant for database errors does not swallow it."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


DOUBLE_SIGINT_WINDOW = 1.0


class Control:
    def __init__(self) -> None:
        self.reload_requested = False
        self.stop_requested = False
        self._last_sigint = 0.0
        self._wakeup_r, self._wakeup_w = os.pipe()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Take over SIGHUP, SIGINT and SIGTERM (main thread only)."""
        for sig, handler in ((signal.SIGHUP, self._on_sighup), (signal.SIGINT, self._on_sigint),
                             (signal.SIGTERM, self._on_sigterm)):
            self._previous[sig] = signal.signal(sig, handler)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)

    def uninstall(self) -> None:
        signal.set_wakeup_fd(-1)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.close(fd)

    # handlers -----------------------------------------------------------
    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.stop_requested and now - self._last_sigint <= DOUBLE_SIGINT_WINDOW:
            raise Terminate("SIGINT")
        self.stop_requested = True
        self._last_sigint = now

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise Terminate("SIGTERM")

    # waiting ------------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        """Sleep up to *seconds*; any of our signals ends it early."""
        if self.stop_requested or self.reload_requested:
            return
        try:
            select.select([self._wakeup_r], [], [], max(seconds, 0.0))
        finally:
            self._drain()

    def _drain(self) -> None:
        try:
            while os.read(self._wakeup_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass
