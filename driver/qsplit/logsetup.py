"""Where the log goes: a rotating log file that survives logrotate, or stderr.

``log_size``/``log_count`` rotate the file as Skytools does.  An outside
logrotate may also move the file away (the handler notices the path now
names another file, or none, and opens a new one) or copy and truncate it
(the file is opened in append mode, so writing goes on at the new end).
Every line passes a filter that hides connection string passwords.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from .db import redact

FORMAT = "%(asctime)s %(process)d %(levelname)s {job}: %(message)s"


class RedactPasswords(logging.Filter):
    """Replace passwords in the formatted message (a DSN in an error text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RotatingWatchedFileHandler(logging.handlers.RotatingFileHandler):
    """Size-based rotation plus WatchedFileHandler's check: when the path no
    longer names the open file (moved or deleted by logrotate), reopen it."""

    def __init__(self, filename: Path, max_bytes: int, backup_count: int) -> None:
        super().__init__(filename, mode="a", maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self._ident = self._stat_ident()

    def _stat_ident(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.baseFilename)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _reopen_if_moved(self) -> None:
        ident = self._stat_ident()
        if ident is not None and ident == self._ident and self.stream is not None:
            return
        if self.stream is not None:
            self.stream.flush()
            self.stream.close()
            self.stream = None  # type: ignore[assignment]
        self.stream = self._open()
        self._ident = self._stat_ident()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._reopen_if_moved()
        except OSError:
            self.handleError(record)
            return
        super().emit(record)

    def doRollover(self) -> None:
        super().doRollover()
        self._ident = self._stat_ident()


def level_for(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose else logging.INFO


def setup(*, logfile: Path | None, log_size: int, log_count: int, level: int, job_name: str,
          also_stderr: bool = False) -> None:
    """Send the root logger's records to *logfile* (or stderr) at *level*.
    Called again on reload: the old handlers are closed and replaced."""
    handlers: list[logging.Handler] = []
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(RotatingWatchedFileHandler(logfile, log_size, log_count))
    if logfile is None or also_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    formatter = logging.Formatter(FORMAT.format(job=job_name.replace("%", "%%")))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactPasswords())
    root = logging.getLogger()
    old = root.handlers[:]
    root.handlers[:] = handlers
    for handler in old:
        handler.close()
    root.setLevel(level)
