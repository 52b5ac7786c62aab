"""The pid file, daemon mode, and the control switches -r / -s / -k.

Liveness is decided by a lock, not by the pid the file holds: the running
driver keeps an exclusive ``flock`` on its pid file for as long as it runs,
and the kernel drops it when the process ends, however it ends.  A pid
alone says nothing after a reboot or a crash, when any process may have
that number.

- Claiming (:func:`claim`): the pid is written to a new file made with
  ``O_EXCL|O_NOFOLLOW`` under a random name (``tempfile.mkstemp``) and
  locked, then hard-linked to the pid file's name, which fails if anything
  is there: so nothing is ever written through a link somebody planted,
  and the file is locked from the moment it has its name.  A pid file
  nobody holds a lock on is stale and replaced (by whoever then holds its
  lock, so two starters cannot both replace it); a held one means a driver
  runs.  A symbolic link, or anything but a plain file, at the pid file's
  name is refused, never followed.
- Signalling (:func:`send_signal`): only when the lock is held AND the
  process the file names has that very file open (checked in
  /proc/PID/fd): whatever the file says, no other process is signalled.
- Releasing (:meth:`PidFile.release`): the name is removed only while it
  still is this process's file, then the lock goes with the descriptor.

The file is created 0600: only the driver's user can read (and so lock) it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("qsplit")

CONTROL_SIGNALS = {"reload": signal.SIGHUP, "stop": signal.SIGINT, "kill": signal.SIGTERM}
_CLAIM_ATTEMPTS = 5


class PidfileError(Exception):
    """The pid file cannot be used: unreadable, not a plain file, cannot be
    written, or a process cannot be signalled."""


class AlreadyRunning(PidfileError):
    """A driver holds the pid file's lock: a second instance (exit 1, as the
    original)."""


class NotRunning(PidfileError):
    """No driver holds the pid file (none there, or stale: whatever process
    it names is not a driver holding it).  -r/-s/-k have nothing to signal."""


@dataclass
class PidFile:
    """A pid file claimed by this process: its descriptor holds the lock."""

    path: Path
    fd: int

    def release(self) -> None:
        """Remove the pid file if its name is still this file, then drop the
        lock (closing the descriptor).  Idempotent."""
        if self.fd < 0:
            return
        try:
            if _same_file(os.fstat(self.fd), self.path):
                self.path.unlink()
        except OSError:
            pass  # gone already, or the directory went read-only: the lock still goes
        finally:
            os.close(self.fd)
            self.fd = -1


def _same_file(st: os.stat_result, path: Path) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def _open_existing(path: Path) -> int | None:
    """A read-only descriptor of the plain file at *path*, never following a
    link (nor blocking on a FIFO); None when nothing is there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PidfileError(f"pidfile {path} is a symbolic link: not following it; remove it "
                               "(or point pidfile at a directory only the driver's user can write)") from None
        raise PidfileError(f"cannot read pidfile {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PidfileError(f"pidfile {path} is not a plain file: remove it")
    return fd


def _pid_in(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if pid > 0 else None


def _locked_by_someone(fd: int) -> bool:
    """Whether another open file description holds a lock on the file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _has_open(pid: int, st: os.stat_result) -> bool | None:
    """Whether process *pid* has the file *st* open: True, False, or None
    when this system cannot tell (no /proc)."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        return False
    except PermissionError:
        raise PidfileError(f"cannot check that process {pid} is the driver holding its pidfile "
                           "(not allowed to read its open files): not signalling it") from None
    for name in names:
        try:
            other = os.stat(f"{fd_dir}/{name}")
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def running_pid(path: Path) -> int | None:
    """The pid of the driver holding *path*, or None when no driver holds
    it (no file, or a stale one).  A held lock whose holder is not the
    process the file names counts as held: never two drivers."""
    fd = _open_existing(path)
    if fd is None:
        return None
    try:
        if not _locked_by_someone(fd):
            return None
        pid = _pid_in(fd)
        if pid is None:
            raise PidfileError(f"pidfile {path} is locked by another process but holds no pid: remove it "
                               "if no driver runs")
        return pid
    finally:
        os.close(fd)


def claim(path: Path) -> PidFile:
    """Make *path* this process's pid file and hold its lock; raise
    AlreadyRunning when a driver holds it, PidfileError when it cannot be
    written or is not a plain file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp: a fresh random name, O_EXCL|O_NOFOLLOW, mode 0600
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise PidfileError(f"cannot write pidfile {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else can have it open yet
        os.write(fd, f"{os.getpid()}\n".encode())
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                os.link(tmp, path)  # never replaces, never follows
                return PidFile(path, fd)
            except FileExistsError:
                _replace_if_stale(path)
        raise PidfileError(f"cannot claim pidfile {path}: another process keeps creating it")
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise PidfileError(f"cannot write pidfile {path}: {exc.strerror}") from None
        raise
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _replace_if_stale(path: Path) -> None:
    """Remove the pid file at *path* when no driver holds it; raise
    AlreadyRunning when one does."""
    fd = _open_existing(path)
    if fd is None:
        return  # removed meanwhile: try the link again
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _pid_in(fd)
            held = f"names running process {pid}" if pid is not None else "is held by another process"
            raise AlreadyRunning(f"pidfile {path} {held}: already running (stop it with -s or -k first)") from None
        # holding its lock: no driver has it, and no other starter can be
        # replacing it now; remove it only if the name is still this file
        if _same_file(os.fstat(fd), path):
            log.warning("replacing stale pidfile %s (no driver holds it; it named process %s)", path, _pid_in(fd))
            path.unlink()
    finally:
        os.close(fd)


def send_signal(path: Path, what: str) -> int:
    """-r/-s/-k: signal the driver holding *path*; returns its pid.  Raises
    NotRunning when no driver holds it, PidfileError when the process cannot
    be signalled or the file cannot be trusted."""
    fd = _open_existing(path)
    if fd is None:
        raise NotRunning(f"no pidfile {path}: qsplit-driver is not running")
    try:
        pid = _pid_in(fd)
        if not _locked_by_someone(fd):
            raise NotRunning(f"pidfile {path} is stale (no driver holds it; it names process {pid}): "
                             "qsplit-driver is not running")
        if pid is None:
            raise PidfileError(f"pidfile {path} is locked but holds no pid: not signalling anything")
        if _has_open(pid, os.fstat(fd)) is False:
            raise NotRunning(f"pidfile {path} names process {pid}, which is not the driver holding it: "
                             "qsplit-driver is not running, not signalling that process")
    finally:
        os.close(fd)
    try:
        os.kill(pid, CONTROL_SIGNALS[what])
    except ProcessLookupError:
        raise NotRunning(f"process {pid} named by pidfile {path} has just ended") from None
    except PermissionError:
        raise PidfileError(f"not allowed to signal process {pid} named by {path}") from None
    return pid


def daemonize() -> None:
    """Detach: fork, setsid, fork again; stdin/stdout/stderr to /dev/null,
    working directory /.  Config paths must be absolute before this.

    Hand-written, not python-daemon (PEP 3143), on purpose: these dozen lines
    are all -d needs, while DaemonContext would do more than we want here --
    close every file descriptor not listed in files_preserve, set umask 0
    (log and pid files world-writable), install its own SIGTERM handler
    over the loop's (signals.py), skip the fork when started by init or a
    supervisor, and bring its pidfile/lockfile protocol next to ours -- and
    add a dependency for systemd-less setups only (the systemd unit runs
    the driver in the foreground, without -d)."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        try:
            os.dup2(devnull, fd)
        except OSError as exc:  # pragma: no cover - only if fds are odd
            if exc.errno != errno.EBADF:
                raise
    if devnull > 2:
        os.close(devnull)
