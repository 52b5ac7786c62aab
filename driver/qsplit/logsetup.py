"""Where the log goes: a rotating log file that survives logrotate, and
stderr.

As the original (skytools DBScript): lines look like
``<asctime> <pid> <LEVEL> <message>`` unless ``logfmt_file`` /
``logfmt_console`` (and their ``_verbose`` forms under -v) say otherwise;
with a logfile, a foreground run writes to stderr as well.
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .db import redact

if TYPE_CHECKING:
    from .config import Config

# the original's line: monitoring written for it matches "<pid> INFO {count: ..."
FORMAT = "%(asctime)s %(process)s %(levelname)s %(message)s"


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


@dataclass(frozen=True)
class LineFormats:
    """logging formats and date formats of the file and of stderr (None:
    logging's defaults for the date, FORMAT for the line)."""

    file: str = FORMAT
    file_date: str | None = None
    console: str = FORMAT
    console_date: str | None = None

    @classmethod
    def of(cls, cfg: "Config | None", level: int) -> "LineFormats":
        """The formats the config asks for at *level*: below INFO (-v) the
        ``_verbose`` keys win, each falling back to its plain key, as in
        skytools."""
        if cfg is None:
            return cls()
        verbose = level < logging.INFO

        def pick(plain: str | None, verbose_value: str | None) -> str | None:
            return verbose_value or plain if verbose else plain

        return cls(
            file=pick(cfg.logfmt_file, cfg.logfmt_file_verbose) or FORMAT,
            file_date=pick(cfg.logdatefmt_file, cfg.logdatefmt_file_verbose) or None,
            console=pick(cfg.logfmt_console, cfg.logfmt_console_verbose) or FORMAT,
            console_date=pick(cfg.logdatefmt_console, cfg.logdatefmt_console_verbose) or None,
        )


def setup(*, logfile: Path | None, log_size: int, log_count: int, level: int,
          formats: LineFormats = LineFormats(), console: bool = True) -> None:
    """Send the root logger's records to *logfile* and, when *console* (a
    foreground run) or when there is no logfile, to stderr, at *level*.
    Called again on reload: the old handlers are closed and replaced."""
    handlers: list[logging.Handler] = []
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingWatchedFileHandler(logfile, log_size, log_count)
        handler.setFormatter(logging.Formatter(formats.file, formats.file_date))
        handlers.append(handler)
    if logfile is None or console:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(formats.console, formats.console_date))
        handlers.append(handler)
    for handler in handlers:
        handler.addFilter(RedactPasswords())
    root = logging.getLogger()
    old = root.handlers[:]
    root.handlers[:] = handlers
    for handler in old:
        handler.close()
    root.setLevel(level)
