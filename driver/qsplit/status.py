"""--status: the consumer as both databases see it.

Source: pgq.get_consumer_info (lag, last seen, last tick, open batch,
pending events).  Target: the qsplit.consumer_status and
qsplit.queue_status views (position, last batch time, events routed in
total and per target queue), the same facts a DBA reads from psql.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg2

from . import db
from .config import Config


@dataclass
class Status:
    consumer_name: str
    queue_name: str
    source: dict[str, object] | None = None  # None: not registered
    source_error: str | None = None
    target: dict[str, object] | None = None  # None: no position row yet
    target_error: str | None = None
    queues: list[tuple[str, str, int, int]] = field(default_factory=list)  # queue, action, events, batches

    @property
    def healthy(self) -> bool:
        return self.source is not None and self.source_error is None and self.target_error is None


SOURCE_SQL = (
    "select extract(epoch from i.lag)::float8 as lag, extract(epoch from i.last_seen)::float8 as last_seen,"
    "       i.last_tick, i.current_batch, i.next_tick, i.pending_events"
    "  from pgq.get_consumer_info(%s, %s) i"
)
TARGET_SQL = (
    "select s.last_tick_id, s.last_batch_id, s.last_applied_at,"
    "       extract(epoch from s.since_last_batch)::float8 as since_last_batch, s.events_routed"
    "  from qsplit.consumer_status s where s.consumer_name = %s"
)
QUEUES_SQL = (
    "select q.queue_name, q.action, q.n_events, q.n_batches from qsplit.queue_status q"
    " where q.consumer_name = %s order by q.action, q.queue_name"
)


def _fetch(cfg: Config, dsn: str, queries: list[tuple[str, tuple]]) -> list[list[dict[str, object]]]:
    defaults = db.connection_defaults(cfg.connect_timeout, cfg.keepalive_idle, cfg.keepalive_interval,
                                      cfg.keepalive_count)
    conn = db.connect(dsn, f"qsplit-driver {cfg.job_name} status", defaults=defaults)
    try:
        out = []
        with conn.cursor() as cur:
            for sql, args in queries:
                cur.execute(sql, args)
                names = [d[0] for d in cur.description]
                out.append([dict(zip(names, row)) for row in cur.fetchall()])
        conn.rollback()
        return out
    finally:
        conn.close()


def _error(exc: psycopg2.Error) -> str:
    text = getattr(exc.diag, "message_primary", None) or str(exc).strip().splitlines()[0]
    return db.redact(text)


def collect(cfg: Config) -> Status:
    st = Status(cfg.consumer_name, cfg.queue_name)
    try:
        (rows,) = _fetch(cfg, cfg.src_db, [(SOURCE_SQL, (cfg.queue_name, cfg.consumer_name))])
        st.source = rows[0] if rows else None
    except psycopg2.Error as exc:
        st.source_error = _error(exc)
    try:
        target, queues = _fetch(cfg, cfg.dst_db, [(TARGET_SQL, (cfg.consumer_name,)),
                                                  (QUEUES_SQL, (cfg.consumer_name,))])
        st.target = target[0] if target else None
        st.queues = [(q["queue_name"], q["action"], q["n_events"], q["n_batches"]) for q in queues]
    except psycopg2.Error as exc:
        st.target_error = _error(exc)
    return st


def _seconds(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f} s"


def _value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def render(st: Status) -> str:
    lines = [f"consumer {st.consumer_name}", f"  source queue {st.queue_name}"]
    if st.source_error:
        lines.append(f"    error: {st.source_error}")
    elif st.source is None:
        lines.append("    registered: no (the driver registers it on start, or use --register)")
    else:
        s = st.source
        lines += [
            "    registered: yes",
            f"    lag: {_seconds(s['lag'])}",
            f"    last seen: {_seconds(s['last_seen'])} ago",
            f"    last tick: {_value(s['last_tick'])}",
            f"    current batch: {_value(s['current_batch'])}",
            f"    next tick: {_value(s['next_tick'])}",
            f"    pending events: {_value(s['pending_events'])}",
        ]
    lines.append("  target")
    if st.target_error:
        lines.append(f"    error: {st.target_error}")
    elif st.target is None:
        lines.append("    position: none (no batch applied yet)")
    else:
        t = st.target
        lines += [
            f"    position: tick {_value(t['last_tick_id'])}, batch {_value(t['last_batch_id'])}",
            f"    last batch: {_value(t['last_applied_at'])}"
            + (f" ({_seconds(t['since_last_batch'])} ago)" if t["since_last_batch"] is not None else ""),
            f"    events routed: {t['events_routed']}",
        ]
        for queue, action, n_events, n_batches in st.queues:
            label = "" if action == "inserted" else f" [{action}]"
            # '' holds the events whose routing value was NULL; a tab or
            # newline in a queue name is shown quoted
            shown = "(NULL)" if queue == "" else queue if queue.isprintable() else repr(queue)
            lines.append(f"      {shown}{label}: {n_events} events in {n_batches} batches")
    return "\n".join(lines) + "\n"
