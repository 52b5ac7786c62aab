"""CPU seconds a measurement costs: the bench process and its children
(getrusage) plus every process of the local PostgreSQL servers it uses
(/proc: the postmaster, its live children, and what its exited children
used, which the postmaster collects when it reaps them).

With the CPU cost per event of L and of qsplit, the ceiling a machine puts
on qsplit / L follows: on N cores neither can go faster than N CPU-seconds
per second, so qsplit / L <= L's CPU per event / qsplit's CPU per event
once both are CPU-bound (the profile behind docs/benchmark.md)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces
    return text[text.rindex(")") + 2:].split()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def server_seconds(postmaster: int) -> float | None:
    """CPU seconds used so far by a server: the postmaster (with its reaped
    children) and its live children.  None when /proc does not show it."""
    fields = _stat_fields(postmaster)
    if fields is None:
        return None
    # fields from 'state' on: utime=11, stime=12, cutime=13, cstime=14 (0-based after the name)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for child in _children(postmaster):
        f = _stat_fields(child)
        if f is not None:
            total += int(f[11]) + int(f[12])
    return total / _TICK


def process_seconds(pid: int) -> tuple[float, float]:
    """(user, kernel) CPU seconds used so far by one live process (a
    backend, for bench/profile.py)."""
    fields = _stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(f"no /proc/{pid}/stat: process {pid} is not on this machine or has ended")
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def own_seconds() -> float:
    """CPU seconds of this process and its waited-for children (psql, the
    driver run as a child)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class CpuMeter:
    """CPU seconds between start() and stop() for the bench and the given
    servers' postmasters (pids; a server not on this machine is left out)."""

    def __init__(self, postmasters: list[int]) -> None:
        self.postmasters = sorted(set(postmasters))
        self._start: tuple[float, list[float | None]] | None = None

    def start(self) -> None:
        self._start = (own_seconds(), [server_seconds(p) for p in self.postmasters])

    def stop(self) -> dict[str, float]:
        assert self._start is not None
        own0, servers0 = self._start
        servers1 = [server_seconds(p) for p in self.postmasters]
        db = sum(b - a for a, b in zip(servers0, servers1) if a is not None and b is not None)
        client = own_seconds() - own0
        return {"cpu_client_s": round(client, 3), "cpu_server_s": round(db, 3), "cpu_s": round(client + db, 3)}
