"""The pid file, daemon mode, and the control switches -r / -s / -k.

The pid file holds the pid of the running driver.  It is created
atomically (written under a temporary name, then hard-linked into place,
which fails if another process got there first), refused when it names a
live process, replaced when the process it names is gone, and removed by
the process that wrote it when it exits.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger("qsplit")

CONTROL_SIGNALS = {"reload": signal.SIGHUP, "stop": signal.SIGINT, "kill": signal.SIGTERM}


class PidfileError(Exception):
    """Another driver runs with this pid file, or it cannot be written."""


class AlreadyRunning(PidfileError):
    """The pid file names a live process: a second instance (exit 1, as the
    original)."""


def read_pid(pidfile: Path) -> int | None:
    """The pid in *pidfile*, or None when there is no usable one."""
    try:
        text = pidfile.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PidfileError(f"cannot read pidfile {pidfile}: {exc.strerror}") from None
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if pid > 0 else None


def is_alive(pid: int) -> bool:
    """True while *pid* runs.  A zombie (killed, not yet reaped by its
    parent) is not running: right after a kill -9 a new -d must start."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # pid (comm) state ...: comm may hold spaces and parentheses
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc to ask: it answered the signal, so it exists


def running_pid(pidfile: Path) -> int | None:
    """The pid of the live process the pid file names, else None."""
    pid = read_pid(pidfile)
    return pid if pid is not None and pid != os.getpid() and is_alive(pid) else None


def write_pidfile(pidfile: Path) -> None:
    """Claim *pidfile* for this process: refuse when it names a live process,
    replace it when the process is gone."""
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = pidfile.with_name(f".{pidfile.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{os.getpid()}\n")
    try:
        for _ in range(3):
            try:
                os.link(tmp, pidfile)
                return
            except FileExistsError:
                pid = running_pid(pidfile)
                if pid is not None:
                    raise AlreadyRunning(
                        f"pidfile {pidfile} names running process {pid}: already running "
                        "(stop it with -s or -k first)"
                    ) from None
                log.warning("replacing stale pidfile %s (process %s is gone)", pidfile, read_pid(pidfile))
                try:
                    pidfile.unlink()
                except FileNotFoundError:
                    pass
            except OSError as exc:
                raise PidfileError(f"cannot write pidfile {pidfile}: {exc.strerror}") from None
        raise PidfileError(f"cannot claim pidfile {pidfile}: another process keeps creating it")
    finally:
        tmp.unlink(missing_ok=True)


def remove_pidfile(pidfile: Path) -> None:
    """Remove *pidfile* if it is still ours."""
    if read_pid(pidfile) == os.getpid():
        pidfile.unlink(missing_ok=True)


def send_signal(pidfile: Path, what: str) -> int:
    """-r/-s/-k: signal the driver named by *pidfile*; returns its pid."""
    pid = read_pid(pidfile)
    if pid is None:
        raise PidfileError(f"no pid in {pidfile}: qsplit-driver is not running")
    try:
        os.kill(pid, CONTROL_SIGNALS[what])
    except ProcessLookupError:
        raise PidfileError(f"pidfile {pidfile} names process {pid}, which is not running (stale pidfile)") from None
    except PermissionError:
        raise PidfileError(f"not allowed to signal process {pid} named by {pidfile}") from None
    return pid


def daemonize() -> None:
    """Detach: fork, setsid, fork again; stdin/stdout/stderr to /dev/null,
    working directory /.  Config paths must be absolute before this."""
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
