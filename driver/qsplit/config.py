"""Read a queue_splitter-style ini file into a Config.

The file an existing Skytools ``queue_splitter`` deployment uses works
unchanged: section ``[queue_splitter]`` (also ``[queue_splitter3]`` of
Skytools 3.1+, or ``[qsplit]``), ``%(job_name)s`` interpolation, ``~`` in
paths, the 3.x aliases ``queue_name`` / ``consumer_name``.

Every key the driver knows is one entry of ``KEYS``: its kind, default and
help text.  The same table checks the file, names unknown keys, prints the
sample config (``--ini``) and the key list of ``--help``.  To add a key: add
a ``Key`` here and a field of the same name to ``Config``.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SECTIONS = ("queue_splitter", "queue_splitter3", "qsplit")

QUEUE_FIELDS = ("extra1", "extra2", "extra3", "extra4", "type")
# routing policies (issue 4): what qsplit.apply_batch does with an event whose
# target queue is missing or refuses inserts, or whose routing value is NULL
ON_UNKNOWN_QUEUE = ("error", "skip", "create", "default", "dead_letter")
ON_NULL_QUEUE = ("error", "skip", "default", "dead_letter")

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
# what PostgreSQL's interval input takes in the forms a config file uses:
# '30', '30 s', '5 minutes', '1 hour 30 min', '00:05:00'
_INTERVAL = re.compile(
    r"^\s*(?:\d+(?:\.\d+)?|\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
    r"|(?:\d+(?:\.\d+)?\s*(?:us|usec|usecs|microseconds?|ms|msec|msecs|milliseconds?|s|sec|secs|seconds?"
    r"|m|min|mins|minutes?|h|hour|hours|d|day|days|w|week|weeks)\s*)+)\s*$",
    re.IGNORECASE,
)


class ConfigError(Exception):
    """The config file is missing, unreadable or has a bad value; the message
    is one line naming the file and the key."""


@dataclass(frozen=True)
class Key:
    """One config key: how to read it, its default, and what it means."""

    name: str
    kind: str  # text, dsn, path, number, integer, size, interval, bool, choice
    default: object = None
    help: str = ""
    aliases: tuple[str, ...] = ()
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    sample: str | None = None  # value shown in --ini when there is no default

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if isinstance(self.default, bool):
            return "1" if self.default else "0"
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


KEYS: tuple[Key, ...] = (
    Key("job_name", "text", None,
        "Name in log lines and the default consumer name. Default: the ini file's name without .ini."),
    Key("src_db", "dsn", None, "libpq connection string of the source database (the one with the queue).",
        required=True, sample="dbname=sourcedb host=oltp.example.com"),
    Key("dst_db", "dsn", None, "libpq connection string of the target database (the one with the target queues "
        "and the qsplit schema).", required=True, sample="dbname=batchdb host=batch.example.com"),
    Key("pgq_queue_name", "text", None, "Source queue to split.", aliases=("queue_name",), required=True,
        sample="source_queue"),
    Key("pgq_consumer_id", "text", None, "Consumer name on the source queue and position name on the target. "
        "Default: job_name.", aliases=("consumer_name",)),
    Key("queue_field", "choice", "extra1", "Event field that names each event's target queue.",
        choices=QUEUE_FIELDS),
    Key("on_unknown_queue", "choice", "error",
        "What to do with events whose target queue does not exist or refuses inserts: error (apply nothing, "
        "retry the batch), skip (count and drop), create (pgq.create_queue, then insert), default (into "
        "default_queue), dead_letter (into qsplit.dead_letter, see qsplit.replay_dead_letters).",
        choices=ON_UNKNOWN_QUEUE),
    Key("on_null_queue", "choice", "error",
        "What to do with events whose routing field is NULL: error, skip, default or dead_letter.",
        choices=ON_NULL_QUEUE),
    Key("default_queue", "text", None, "Target queue of the 'default' policies; needed when one of them is "
        "default.", sample="unrouted"),
    Key("loop_delay", "number", 1.0, "Seconds to sleep when there is no batch.", minimum=0.0),
    Key("connection_lifetime", "number", 1200.0,
        "Seconds after which both connections are closed and opened again (between batches); 0 = never.",
        minimum=0.0),
    Key("connect_timeout", "integer", 15,
        "libpq connect_timeout added to src_db and dst_db unless they set it; 0 = wait forever.", minimum=0),
    Key("keepalive_idle", "integer", 60,
        "TCP keepalives: seconds of silence before the first probe (libpq keepalives_idle), added to both "
        "connection strings unless they set keepalives themselves; 0 = no keepalives.", minimum=0),
    Key("keepalive_interval", "integer", 10, "TCP keepalives: seconds between probes (keepalives_interval).",
        minimum=1),
    Key("keepalive_count", "integer", 6,
        "TCP keepalives: unanswered probes before the connection counts as dead (keepalives_count).", minimum=1),
    Key("pgq_batch_collect_events", "integer", None,
        "Wait until a batch has at least this many events (pgq.next_batch_custom min_count).", minimum=1,
        sample="1000"),
    Key("pgq_batch_collect_interval", "interval", None,
        "Wait until a batch spans at least this long (next_batch_custom min_interval), e.g. '30 s'.",
        sample="30 seconds"),
    Key("pgq_keep_lag", "interval", None,
        "Stay this far behind the queue's head (next_batch_custom min_lag), e.g. '5 minutes'.",
        sample="5 minutes"),
    Key("logfile", "path", None, "Log file; without it the log goes to stderr. Safe under logrotate "
        "(copytruncate or move).", sample="~/log/%(job_name)s.log"),
    Key("log_size", "size", 10 * 1024 * 1024,
        "Rotate the log file when it reaches this size (bytes, or with k/M/G); 0 = never rotate.", minimum=0),
    Key("log_count", "integer", 3, "Rotated log files to keep.", minimum=0),
    Key("log_level", "choice", "info", "Least important log lines written: debug, info, warning or error. "
        "-v (debug) and -q (warning) on the command line win.", choices=("debug", "info", "warning", "error")),
    Key("idle_log_interval", "number", 300.0,
        "While there are no batches, log a keepalive line this often (seconds); 0 = never.", minimum=0.0),
    Key("pidfile", "path", None, "Pid file; needed by -d, and by -r/-s/-k to find the running process.",
        sample="~/pid/%(job_name)s.pid"),
    Key("use_skylog", "bool", False, "Skytools network logging: accepted for compatibility and ignored."),
    Key("metrics_port", "integer", None,
        "Serve Prometheus metrics over HTTP on this TCP port (GET /metrics); unset = no metrics server.",
        minimum=1, maximum=65535, sample="9187"),
    Key("metrics_addr", "text", "127.0.0.1",
        "Address the metrics server listens on (0.0.0.0 or :: for every interface)."),
    Key("metrics_top_queues", "integer", 100,
        "Target queues that get a label of their own in the metrics (the first ones seen, biggest first); "
        "events of any further queue count under queue=\"other\", so the number of series stays bounded.",
        minimum=1),
)

KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}
ALIASES: dict[str, str] = {a: k.name for k in KEYS for a in k.aliases}


@dataclass(frozen=True)
class Config:
    path: Path
    job_name: str
    src_db: str
    dst_db: str
    pgq_queue_name: str
    pgq_consumer_id: str
    queue_field: str = "extra1"
    on_unknown_queue: str = "error"
    on_null_queue: str = "error"
    default_queue: str | None = None
    loop_delay: float = 1.0
    connection_lifetime: float = 1200.0
    connect_timeout: int = 15
    keepalive_idle: int = 60
    keepalive_interval: int = 10
    keepalive_count: int = 6
    pgq_batch_collect_events: int | None = None
    pgq_batch_collect_interval: str | None = None
    pgq_keep_lag: str | None = None
    logfile: Path | None = None
    log_size: int = 10 * 1024 * 1024
    log_count: int = 3
    log_level: str = "info"
    idle_log_interval: float = 300.0
    pidfile: Path | None = None
    use_skylog: bool = False
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    metrics_top_queues: int = 100
    section: str = "queue_splitter"
    # things worth a warning, logged by the caller once logging is set up
    warnings: tuple[str, ...] = ()

    @property
    def queue_name(self) -> str:
        return self.pgq_queue_name

    @property
    def consumer_name(self) -> str:
        return self.pgq_consumer_id


_NOT_KEYS = {"path", "section", "warnings"}
assert {f.name for f in dataclasses.fields(Config)} - _NOT_KEYS == set(KEYS_BY_NAME), "KEYS and Config disagree"


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` arguments as a dict (the last one of a key wins)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        # an alias (queue_name, consumer_name) overrides its key, whichever
        # of the two names the file uses
        out[ALIASES.get(key, key)] = value.strip()
    return out


def load(path: str | os.PathLike[str], overrides: dict[str, str] | None = None) -> Config:
    """Read and check the config file at *path*; *overrides* (``--set``)
    replace keys of the file.  Raises ConfigError with one line naming the
    file and the key."""
    path = Path(path).absolute()
    parser = configparser.ConfigParser(
        interpolation=configparser.BasicInterpolation(),
        defaults={"job_name": path.stem},
    )
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid ini file: {_one_line(exc)}") from None

    section = next((s for s in SECTIONS if parser.has_section(s)), None)
    if section is None:
        raise ConfigError(
            f"{path}: no [{SECTIONS[0]}] section (also accepted: "
            + ", ".join(f"[{s}]" for s in SECTIONS[1:])
            + ")"
        )
    warnings: list[str] = []
    for key, value in (overrides or {}).items():
        parser.set(section, key, value.replace("%", "%%") if key in ("src_db", "dst_db") else value)

    # the only built-in default is job_name, a known key: everything else
    # listed here was written in the file (or its [DEFAULT] section)
    unknown = sorted(k for k in parser.options(section) if k not in KEYS_BY_NAME and k not in ALIASES)
    if unknown:
        warnings.append(
            f"{path}: [{section}] unknown key(s) ignored: {', '.join(unknown)} (see qsplit-driver --ini for the known keys)"
        )

    reader = _Reader(parser, section, path)
    values: dict[str, object] = {}
    for key in KEYS:
        values[key.name] = reader.read(key)
    if not values["job_name"]:
        values["job_name"] = path.stem
    if not values["pgq_consumer_id"]:
        values["pgq_consumer_id"] = values["job_name"]
    for policy in ("on_unknown_queue", "on_null_queue"):
        if values[policy] == "default" and not values["default_queue"]:
            raise ConfigError(f"{path}: [{section}] {policy} = default needs default_queue to be set")
    if values["use_skylog"]:
        warnings.append(f"{path}: [{section}] use_skylog is not supported and is ignored; "
                        "the log goes to logfile (or stderr)")
    return Config(path=path, section=section, warnings=tuple(warnings), **values)  # type: ignore[arg-type]


class _Reader:
    def __init__(self, parser: configparser.ConfigParser, section: str, path: Path) -> None:
        self._parser = parser
        self._section = section
        self._path = path

    def _where(self, key: str) -> str:
        return f"{self._path}: [{self._section}] {key}"

    def _raw(self, key: str) -> str | None:
        try:
            value = self._parser.get(self._section, key, fallback=None)
        except configparser.Error as exc:
            raise ConfigError(f"{self._where(key)}: {_one_line(exc)}") from None
        if value is None:
            return None
        value = value.strip()
        return value or None

    def read(self, key: Key) -> object:
        name, raw = key.name, self._raw(key.name)
        for alias in key.aliases:
            if raw is not None:
                break
            raw, name = self._raw(alias), alias
        if raw is None:
            if key.required:
                also = "".join(f" (or {a})" for a in key.aliases)
                raise ConfigError(f"{self._where(key.name)}{also} is required but not set")
            return key.default
        try:
            return _PARSERS[key.kind](raw, key)
        except ValueError as exc:
            shown = "<hidden>" if key.kind == "dsn" else repr(raw)
            raise ConfigError(f"{self._where(name)} = {shown}: {exc}") from None


def _number(raw: str, key: Key) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("not a number") from None
    return _check_minimum(value, key)


def _integer(raw: str, key: Key) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("not a whole number") from None
    return int(_check_minimum(value, key))


def _size(raw: str, key: Key) -> int:
    m = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", raw)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError("not a size (a number of bytes, optionally with k, M or G)")
    return int(_check_minimum(int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()], key))


def _check_minimum(value: float, key: Key) -> float:
    if key.minimum is not None and not value >= key.minimum:  # also catches nan
        raise ValueError(f"must be >= {key.minimum:g}")
    if key.maximum is not None and not value <= key.maximum:
        raise ValueError(f"must be <= {key.maximum:g}")
    return value


def _bool(raw: str, key: Key) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("not a boolean (1/0, yes/no, true/false, on/off)")


def _choice(raw: str, key: Key) -> str:
    low = raw.lower()
    if key.name == "queue_field" and low.startswith("ev_"):
        low = low[3:]
    if low not in key.choices:
        raise ValueError(f"must be one of {', '.join(key.choices)}")
    return low


def _interval(raw: str, key: Key) -> str:
    if not _INTERVAL.match(raw):
        raise ValueError("not an interval (seconds, or e.g. '30 s', '5 minutes', '00:05:00')")
    return raw


def _dsn(raw: str, key: Key) -> str:
    import psycopg2.extensions

    try:
        psycopg2.extensions.parse_dsn(raw)
    except psycopg2.ProgrammingError:
        raise ValueError("not a valid libpq connection string") from None
    return raw


def _path(raw: str, key: Key) -> Path:
    return Path(os.path.expanduser(raw)).absolute()


_PARSERS: dict[str, Callable[[str, Key], object]] = {
    "text": lambda raw, key: raw,
    "dsn": _dsn,
    "path": _path,
    "number": _number,
    "integer": _integer,
    "size": _size,
    "interval": _interval,
    "bool": _bool,
    "choice": _choice,
}
assert {k.kind for k in KEYS} <= set(_PARSERS)


def sample_ini(section: str = "queue_splitter") -> str:
    """A commented config file with every key: required keys set to an
    example, the others commented out at their default."""
    out = [
        "# qsplit-driver config (a Skytools queue_splitter ini file works unchanged).",
        "# Section [queue_splitter], [queue_splitter3] or [qsplit]; %(job_name)s is",
        "# replaced by job_name, ~ in paths by the home directory.",
        f"[{section}]",
    ]
    for key in KEYS:
        out.append("")
        out.extend(textwrap.wrap(key.help, width=76, initial_indent="# ", subsequent_indent="# "))
        if key.aliases:
            out.append(f"# Also accepted as: {', '.join(key.aliases)}.")
        if key.choices:
            out.append(f"# One of: {', '.join(key.choices)}.")
        if key.required:
            out.append(f"{key.name} = {key.sample}")
        elif key.name == "job_name":
            out.append("job_name = my_splitter")
        elif key.default is not None:
            out.append(f"#{key.name} = {key.default_text}")
        else:
            out.append(f"#{key.name} = {key.sample or ''}".rstrip())
    return "\n".join(out) + "\n"


def key_summary(keys: Sequence[Key] = KEYS) -> str:
    """The key list for --help: name, default, one paragraph of help."""
    lines = []
    for key in keys:
        head = key.name + (f" (or {', '.join(key.aliases)})" if key.aliases else "")
        if key.required:
            head += "  [required]"
        elif key.default is not None:
            head += f"  [default {key.default_text}]"
        lines.append("  " + head)
        lines.extend(textwrap.wrap(key.help, width=74, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
