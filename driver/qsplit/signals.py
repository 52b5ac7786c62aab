"""Signals, as the loop sees them.

- SIGHUP: reload the config before the next batch.
- SIGINT: finish the batch in progress, then stop (exit 0).  A second SIGINT
  within a second stops at once, like SIGTERM.
- SIGTERM: stop at once: the handler raises Terminate wherever the loop is;
  the open target transaction is rolled back when its connection closes, so
  nothing is half-applied, and the batch stays open on the source.

The handlers only set flags (or raise Terminate).  Python runs them in the
main thread between bytecodes, never while it waits in libpq for a
statement; so the C-level handler also writes the signal number into a
wakeup pipe, read by a small thread that ends the loop's sleep at once and,
for a stop-now signal, cancels the statement in progress (PQcancel, which
is safe from another thread), so a driver blocked on a lock stops too.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType


class Terminate(BaseException):
    """Stop now (SIGTERM, or a second SIGINT).  A BaseException, so that
    error handling meant for database errors does not swallow it."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


# a SIGINT this many seconds or less after the previous one stops at once
DOUBLE_SIGINT_WINDOW = 1.0


class SigintClock:
    """The double-SIGINT rule, in one place: is this SIGINT the second one
    within DOUBLE_SIGINT_WINDOW?  The handler and the watcher thread keep one
    each, as each sees the signals on its own (the kernel may fold two quick
    SIGINTs into one run of the Python handler; the wakeup pipe carries both)."""

    def __init__(self) -> None:
        self._last = float("-inf")

    def second(self) -> bool:
        now = time.monotonic()
        second, self._last = now - self._last <= DOUBLE_SIGINT_WINDOW, now
        return second


class Control:
    def __init__(self) -> None:
        self.reload_requested = False
        self.stop_requested = False
        # set by the watcher thread: a stop-now signal came (the kernel may
        # fold two quick SIGINTs into one run of the Python handler, but the
        # wakeup pipe carries both)
        self.stop_now: str | None = None
        self._sigints = SigintClock()
        self._wake = threading.Event()
        self._cancel_hooks: list[Callable[[], None]] = []
        self._wakeup_r = self._wakeup_w = -1
        self._watcher: threading.Thread | None = None
        self._previous: dict[int, object] = {}

    def on_stop_now(self, hook: Callable[[], None]) -> None:
        """Call *hook* (from the watcher thread) when a stop-now signal comes."""
        self._cancel_hooks.append(hook)

    def install(self) -> None:
        """Take over SIGHUP, SIGINT and SIGTERM (main thread only)."""
        self._wakeup_r, self._wakeup_w = os.pipe()
        os.set_blocking(self._wakeup_w, False)
        for sig, handler in ((signal.SIGHUP, self._on_sighup), (signal.SIGINT, self._on_sigint),
                             (signal.SIGTERM, self._on_sigterm)):
            self._previous[sig] = signal.signal(sig, handler)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        self._watcher = threading.Thread(target=self._watch, name="qsplit-signals", daemon=True)
        self._watcher.start()

    def uninstall(self) -> None:
        if self._watcher is None:
            return
        signal.set_wakeup_fd(-1)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
        os.close(self._wakeup_w)  # the watcher reads EOF and ends
        self._watcher.join(timeout=2)
        os.close(self._wakeup_r)
        self._watcher = None

    # handlers (main thread) -----------------------------------------------
    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._sigints.second() and self.stop_requested:
            raise Terminate("SIGINT")
        self.stop_requested = True

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise Terminate("SIGTERM")

    # the watcher thread ---------------------------------------------------
    def _watch(self) -> None:
        sigints = SigintClock()
        while True:
            try:
                data = os.read(self._wakeup_r, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                stop_now = signum == signal.SIGTERM
                if signum == signal.SIGINT:
                    stop_now = sigints.second()
                if stop_now:
                    self.stop_now = signal.Signals(signum).name
                    for hook in self._cancel_hooks:
                        try:
                            hook()
                        except Exception:  # noqa: BLE001 - best effort; the main thread stops anyway
                            pass
            self._wake.set()

    # main thread --------------------------------------------------------
    def check(self) -> None:
        """Raise Terminate when a stop-now signal has come."""
        if self.stop_now is not None:
            raise Terminate(self.stop_now)

    def sleep(self, seconds: float) -> None:
        """Sleep up to *seconds*; any of our signals ends it early."""
        if self.stop_requested or self.reload_requested:
            return
        self._wake.wait(max(seconds, 0.0))
        self._wake.clear()
