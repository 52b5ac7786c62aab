"""Consumer management: --register, --unregister, --rewind, --reset.

Each is one short transaction per side on connections of its own; the
messages say what changed.  They refuse to run while a driver with this
config is running (its pid file names a live process): moving a consumer
under a running driver is how batches get lost or doubled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2.extensions

from . import db
from .config import Config
from .readahead import read_ahead_name



class ManagementError(Exception):
    """The operation cannot be done; the message says why and what to do."""


class NothingToDo(ManagementError):
    """The operation has nothing to act on: a warning and exit 0, as the
    original (its --rewind with no target position only warns)."""


@contextmanager
def _connection(cfg: Config, dsn: str) -> Iterator[psycopg2.extensions.connection]:
    defaults = db.connection_defaults(cfg.connect_timeout, cfg.keepalive_idle, cfg.keepalive_interval,
                                      cfg.keepalive_count)
    conn = db.connect(dsn, f"qsplit-driver {cfg.job_name} admin", defaults=defaults)
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def _one(conn: psycopg2.extensions.connection, sql: str, args: tuple) -> object:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
    return row[0] if row else None


def register(cfg: Config) -> str:
    with _connection(cfg, cfg.src_db) as src:
        created = _one(src, "select pgq.register_consumer(%s, %s)", (cfg.queue_name, cfg.consumer_name))
    if created == 1:
        return f"registered consumer {cfg.consumer_name!r} on source queue {cfg.queue_name!r}"
    return f"consumer {cfg.consumer_name!r} was already registered on source queue {cfg.queue_name!r}"


def unregister(cfg: Config) -> str:
    ahead = read_ahead_name(cfg.consumer_name)
    with _connection(cfg, cfg.src_db) as src:
        gone = _one(src, "select pgq.unregister_consumer(%s, %s)", (cfg.queue_name, cfg.consumer_name))
        # read_ahead's consumer too, whatever the ini says now: left behind
        # it would keep the queue's events
        ahead_gone = _one(src, "select pgq.unregister_consumer(s.queue_name, s.consumer_name)"
                               "  from pgq.get_consumer_info(%s) s where s.consumer_name = %s",
                          (cfg.queue_name, ahead))
    with _connection(cfg, cfg.dst_db) as dst:
        old = _one(dst, "select qsplit.reset_position(%s)", (cfg.consumer_name,))
    head = (f"unregistered consumer {cfg.consumer_name!r} from source queue {cfg.queue_name!r}" if gone
            else f"consumer {cfg.consumer_name!r} was not registered on source queue {cfg.queue_name!r}")
    if ahead_gone:
        head += f" (and its read-ahead consumer {ahead!r})"
    return head + f"; target position cleared (was {_tick(old)})"


def reset(cfg: Config) -> str:
    with _connection(cfg, cfg.dst_db) as dst:
        old = _one(dst, "select qsplit.reset_position(%s)", (cfg.consumer_name,))
    return (f"consumer {cfg.consumer_name!r}: target position forgotten (was {_tick(old)}); "
            "the next batch is applied whatever its ticks")


def rewind(cfg: Config) -> str:
    """Move the source consumer to the last tick the target applied: the
    later of qsplit's position and queue_splitter's pgq_ext row
    (qsplit.rewind_tick), so a switch from the original is not undone."""
    with _connection(cfg, cfg.dst_db) as dst:
        with dst.cursor() as cur:
            cur.execute("select r.tick, r.taken_from from qsplit.rewind_tick(%s) r", (cfg.consumer_name,))
            tick, taken_from = cur.fetchone()
    if tick is None:
        raise NothingToDo(
            f"consumer {cfg.consumer_name!r} has no position on the target, so there is nothing to rewind to "
            "(start the driver, or use --reset if the target position was cleared on purpose)"
        )
    with _connection(cfg, cfg.src_db) as src:
        try:
            _one(src, "select pgq.register_consumer_at(%s, %s, %s)", (cfg.queue_name, cfg.consumer_name, tick))
        except psycopg2.Error as exc:
            text = (exc.diag.message_primary or str(exc)).strip()
            raise ManagementError(
                f"cannot move consumer {cfg.consumer_name!r} on source queue {cfg.queue_name!r} "
                f"to tick {tick}: {text}"
            ) from None
    where = ("queue_splitter's pgq_ext.completed_tick, ahead of qsplit's position" if taken_from == "pgq_ext"
             else "qsplit's position")
    return (f"consumer {cfg.consumer_name!r} on source queue {cfg.queue_name!r} repositioned at tick {tick}, "
            f"the target's last applied tick ({where})")


OPERATIONS: dict[str, Callable[[Config], str]] = {
    "register": register,
    "unregister": unregister,
    "rewind": rewind,
    "reset": reset,
}


def _tick(tick: object) -> str:
    return "none" if tick is None else f"tick {tick}"
