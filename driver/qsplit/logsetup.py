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
Every line passes a filter that hides connection string passwords, and
one that escapes control characters: event data (a routing value in an
error message, say) can hold a newline, and must not forge a line.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import stat
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


# what a log line shows for the control characters a reader knows by name;
# any other character that is not printable shows as \xNN, \uNNNN or \UNNNNNNNN
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """*text* with every character that is not printable escaped: line
    breaks of any kind (\n, \r, \x85, \u2028 ...), terminal escapes, bidi
    overrides.  Printable text, any script, is left as it is."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class EscapeControls(logging.Filter):
    """Escape control characters in the message, so that one record is one
    line whatever values it carries."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


class LineFormatter(logging.Formatter):
    """logging.Formatter whose traceback and stack lines are each escaped
    and marked with a leading "| ", so that even an exception message
    holding a line break cannot start a line of its own."""

    def formatException(self, ei) -> str:  # noqa: N802 - logging's name
        return _marked(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return _marked(super().formatStack(stack_info))


def _marked(text: str) -> str:
    return "\n".join("| " + escape_controls(line) for line in text.split("\n"))


class LogfileError(OSError):
    """The logfile's name leads somewhere the driver will not write."""


# links followed in one path at most (the kernel's own limit is 40)
_MAX_LINKS = 40


def _trusted(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _resolve(path: str) -> str:
    """*path* made absolute with every symbolic link in it (of a directory
    or of the file) replaced by what it points to, one link at a time.  A
    link is followed only when this user or root owns it — the rule
    fs.protected_symlinks applies in sticky directories, applied here in
    every directory: a link another local user planted (in a shared log
    directory) would have the driver write wherever it points.  Components
    that do not exist yet are kept as they are."""
    resolved = "/"
    pending = os.path.abspath(path).split("/")
    links = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return os.path.join(candidate, *[p for p in pending if p])
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        if not _trusted(st.st_uid):
            raise LogfileError(
                f"logfile {path}: {candidate} is a symbolic link owned by uid {st.st_uid}, neither this user nor "
                "root: not followed (another user could point it at any file the driver may write); replace it "
                "with the file or directory itself, or with a link of your own")
        links += 1
        if links > _MAX_LINKS:
            raise LogfileError(f"logfile {path}: more than {_MAX_LINKS} symbolic links")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = "/"
        pending = target.split("/") + pending
    return resolved


def open_logfile(path: str) -> int:
    """Open *path* to append, creating it, and return the descriptor.

    A new log file is not world-readable (0640 before the umask): its lines
    carry event data; an existing file keeps the mode it has.

    Where the name leads is checked as fs.protected_symlinks and
    fs.protected_regular would in a sticky directory, in every directory
    (both are off on some hosts): every symbolic link on the way must
    belong to this user or root (_resolve), and the file opened must be a
    regular file of this user or root with no other hard link — not a FIFO
    (which would block the driver), not a file another user made to read
    the log.  After opening, the name must still lead to that file.
    Raises LogfileError for what is refused, OSError for what the system
    refuses."""
    real = _resolve(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(real, flags, 0o640)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LogfileError(f"logfile {path} is not a regular file: not written")
        if not _trusted(st.st_uid):
            raise LogfileError(
                f"logfile {path} belongs to uid {st.st_uid}, neither this user nor root: not written (another "
                "user could read the log); remove it or give it to this user")
        if st.st_nlink != 1:
            raise LogfileError(f"logfile {path} has other hard links: not written (it could be another file)")
        now = os.stat(path)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise LogfileError(f"logfile {path} changed while it was opened: not written")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_logfile(path: Path) -> None:
    """Make sure *path* can be opened as the log file (creating its
    directory, the links on the way checked first, and the file), before
    anything is detached or logged there; raises LogfileError or OSError."""
    Path(_resolve(str(path))).parent.mkdir(parents=True, exist_ok=True)
    os.close(open_logfile(str(path)))


class RotatingWatchedFileHandler(logging.handlers.RotatingFileHandler):
    """Size-based rotation plus WatchedFileHandler's check: when the path no
    longer names the open file (moved or deleted by logrotate), reopen it."""

    def __init__(self, filename: Path, max_bytes: int, backup_count: int) -> None:
        super().__init__(filename, mode="a", maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
        self._ident = self._stat_ident()

    def _open(self):
        return open(open_logfile(self.baseFilename), "a", encoding=self.encoding, errors=self.errors)

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
        check_logfile(logfile)
        handler: logging.Handler = RotatingWatchedFileHandler(logfile, log_size, log_count)
        handler.setFormatter(LineFormatter(formats.file, formats.file_date))
        handlers.append(handler)
    if logfile is None or console:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LineFormatter(formats.console, formats.console_date))
        handlers.append(handler)
    for handler in handlers:
        handler.addFilter(RedactPasswords())
        handler.addFilter(EscapeControls())
    root = logging.getLogger()
    old = root.handlers[:]
    root.handlers[:] = handlers
    for handler in old:
        handler.close()
    root.setLevel(level)
