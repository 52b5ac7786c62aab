"""--status: this config's consumer as both databases see it, and every
consumer on the target.

Source: pgq.get_consumer_info (lag, last seen, last tick, open batch,
pending events) of this config's consumer.  Target: the
qsplit.consumer_status and qsplit.queue_status views, read whole (position,
lag of the last applied tick, last batch time, events per target queue and
action, dead letters waiting), the same facts a DBA reads from psql.  The
views decide which consumers a reader sees (a writer its own, qsplit_admin
all): this module never filters them.

``render`` makes the text a person reads; ``to_json`` the document a
script reads (``--status --json``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import psycopg2

from . import db
from .config import Config


@dataclass
class QueueCount:
    consumer_name: str
    queue_name: str
    action: str
    n_events: int
    n_batches: int


@dataclass
class Status:
    consumer_name: str
    queue_name: str
    source: dict[str, object] | None = None  # None: not registered
    source_error: str | None = None
    target_error: str | None = None
    # every consumer the views show, by name; each a row of consumer_status
    consumers: list[dict[str, object]] = field(default_factory=list)
    counts: list[QueueCount] = field(default_factory=list)

    @property
    def target(self) -> dict[str, object] | None:
        """This config's consumer on the target (None: no position yet)."""
        return next((c for c in self.consumers if c["consumer_name"] == self.consumer_name), None)

    @property
    def queues(self) -> list[QueueCount]:
        """This config's consumer's counts per target queue and action."""
        return [q for q in self.counts if q.consumer_name == self.consumer_name]

    @property
    def healthy(self) -> bool:
        return self.source is not None and self.source_error is None and self.target_error is None


SOURCE_SQL = (
    "select extract(epoch from i.lag)::float8 as lag, extract(epoch from i.last_seen)::float8 as last_seen,"
    "       i.last_tick, i.current_batch, i.next_tick, i.pending_events"
    "  from pgq.get_consumer_info(%s, %s) i"
)
# no WHERE: the views show the reader the consumers it may see
CONSUMERS_SQL = (
    "select s.consumer_name, s.last_tick_id, s.last_batch_id, s.last_tick_time, s.last_applied_at,"
    "       extract(epoch from now() - s.last_tick_time)::float8 as lag,"
    "       extract(epoch from s.since_last_batch)::float8 as since_last_batch,"
    "       s.events_routed, s.dead_letters_waiting"
    "  from qsplit.consumer_status s order by s.consumer_name"
)
QUEUES_SQL = (
    "select q.consumer_name, q.queue_name, q.action, q.n_events, q.n_batches from qsplit.queue_status q"
    " order by q.consumer_name, q.action, q.queue_name"
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
        consumers, queues = _fetch(cfg, cfg.dst_db, [(CONSUMERS_SQL, ()), (QUEUES_SQL, ())])
        st.consumers = consumers
        st.counts = [QueueCount(**q) for q in queues]
    except psycopg2.Error as exc:
        st.target_error = _error(exc)
    return st


# text -------------------------------------------------------------------------

def _seconds(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f} s"


def _value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _name(name: str) -> str:
    """A queue or consumer name for the table: '' holds the events whose
    routing value was NULL; a tab or newline in a name is shown quoted."""
    return "(NULL)" if name == "" else name if name.isprintable() else repr(name)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Aligned columns (numbers, the *right* indexes, to the right)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for row in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  " + "  ".join(cells).rstrip())
    return out


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
        return "\n".join(lines) + "\n"
    t = st.target
    if t is None:
        lines.append("    position: none (no batch applied yet)")
    else:
        lines += [
            f"    position: tick {_value(t['last_tick_id'])}, batch {_value(t['last_batch_id'])}",
            f"    last batch: {_value(t['last_applied_at'])}"
            + (f" ({_seconds(t['since_last_batch'])} ago)" if t["since_last_batch"] is not None else ""),
            f"    events routed: {t['events_routed']}",
            f"    dead letters waiting: {t['dead_letters_waiting']}",
        ]
        for q in st.queues:
            label = "" if q.action == "inserted" else f" [{q.action}]"
            lines.append(f"      {_name(q.queue_name)}{label}: {q.n_events} events in {q.n_batches} batches")

    lines += ["", f"consumers on the target ({len(st.consumers)})"]
    if not st.consumers:
        lines.append("  none yet (a consumer appears with its first applied batch)")
        return "\n".join(lines) + "\n"
    lines += _table(
        ("consumer", "tick", "batch", "lag", "last batch", "ago", "events routed", "dead letters"),
        [(_name(c["consumer_name"]), _value(c["last_tick_id"]), _value(c["last_batch_id"]), _seconds(c["lag"]),
          _value(c["last_applied_at"]), _seconds(c["since_last_batch"]), str(c["events_routed"]),
          str(c["dead_letters_waiting"])) for c in st.consumers],
        right={1, 2, 3, 5, 6, 7},
    )
    lines.append("  (lag: from the source time of the last applied tick to now, on the target's clock)")
    if st.counts:
        lines += ["", "events per target queue"]
        lines += _table(
            ("consumer", "queue", "action", "events", "batches"),
            [(_name(q.consumer_name), _name(q.queue_name), q.action, str(q.n_events), str(q.n_batches))
             for q in st.counts],
            right={3, 4},
        )
    return "\n".join(lines) + "\n"


# JSON ---------------------------------------------------------------------------

def _plain(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def to_json(st: Status) -> str:
    """The status as one JSON document: this config's consumer on the source,
    then every consumer the target shows, each with its queue counts."""
    consumers = []
    for c in st.consumers:
        row = {k: _plain(v) for k, v in c.items()}
        row["lag_seconds"] = row.pop("lag")
        row["since_last_batch_seconds"] = row.pop("since_last_batch")
        row["queues"] = [{"queue_name": q.queue_name, "action": q.action, "n_events": q.n_events,
                          "n_batches": q.n_batches} for q in st.counts if q.consumer_name == c["consumer_name"]]
        consumers.append(row)
    source = None if st.source is None else {k: _plain(v) for k, v in st.source.items()}
    if source is not None:
        source["lag_seconds"] = source.pop("lag")
        source["last_seen_seconds"] = source.pop("last_seen")
    doc = {
        "consumer_name": st.consumer_name,
        "source_queue": st.queue_name,
        "healthy": st.healthy,
        "source": {"registered": source is not None, **(source or {})} if st.source_error is None else None,
        "source_error": st.source_error,
        "target_error": st.target_error,
        "consumers": consumers,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
