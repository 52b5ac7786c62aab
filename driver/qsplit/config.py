"""Read a queue_splitter-style ini file into a Config.

The file an existing Skytools ``queue_splitter`` deployment uses works
unchanged: section ``[queue_splitter3]`` (Skytools 3.1+) or
``[queue_splitter]`` (2.x, 3.0), or ``[qsplit]``; when a file has several,
the one the running original reads wins (``[qsplit]`` before all).
``%(name)s`` interpolation with the names skytools' Config defines
(``job_name``, ``service_name`` = the section, ``host_name``,
``config_dir``, ``config_file``), or ``${name}`` with ``config_format = 2``,
in every key.  The connection strings ``src_db`` / ``dst_db`` interpolate as
in the original (``%%`` is one ``%``) when they can; one the original could not
read at all (a lone ``%``, as in a password ``a%3&b``) is taken as written
instead of refused, and no other key can pull them in; ``~`` in paths; the 3.x
aliases ``queue_name`` / ``consumer_name``.
Relative paths are resolved once, against the directory the driver started
in (a reload in daemon mode, which runs in ``/``, keeps them there).

Every key the driver knows is one entry of ``KEYS``: its kind, default and
help text.  The same table checks the file, names unknown keys, prints the
sample config (``--ini``) and the key list of ``--help``.  To add a key: add
a ``Key`` here and a field of the same name to ``Config``.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import os
import re
import socket
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# in the order of preference: [qsplit] when present, else the section the
# running original reads (Skytools 3.1+ queue_splitter reads
# [queue_splitter3]; 2.x and 3.0 read [queue_splitter])
SECTIONS = ("qsplit", "queue_splitter3", "queue_splitter")
# the interpolation names skytools' Config defines for every file, as
# %(name)s (or ${name} with config_format = 2); not config keys themselves,
# except job_name
INTERPOLATION_NAMES = ("job_name", "service_name", "host_name", "config_dir", "config_file")
# the original's log line (skytools DBScript), used unless logfmt_* say otherwise
DEFAULT_LOGFMT = "%(asctime)s %(process)s %(levelname)s %(message)s"

# the event fields queue_field may name (also as ev_<name>): the one list of
# them in Python (source.route_column maps them to columns); the SQL side's
# is qsplit._route_column
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
    Key("src_db", "dsn", None, "libpq connection string of the source database (the one with the queue). "
        "Interpolated as by queue_splitter (%% for %); a value that does not interpolate (a lone % in a password) "
        "is taken as written; never shown in a message.",
        required=True, sample="dbname=sourcedb host=oltp.example.com"),
    Key("dst_db", "dsn", None, "libpq connection string of the target database (the one with the target queues "
        "and the qsplit schema). Read as src_db.", required=True, sample="dbname=batchdb host=batch.example.com"),
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
    Key("create_limit", "integer", 20,
        "on_unknown_queue = create makes at most this many queues per batch (each holds about 40 locks until "
        "the batch commits; the lock table is shared by the whole server); the names beyond it get "
        "create_fallback.", minimum=0),
    Key("create_pattern", "text", None,
        "on_unknown_queue = create makes only queues that a route rule (qsplit.add_route) names or whose name "
        "matches this POSIX regular expression (whole name, no back-references); the others get "
        "create_fallback. Default: any name up to 1024 bytes.", sample="queue\\.[a-z_]+"),
    Key("create_fallback", "choice", "dead_letter",
        "What happens to the events of the names on_unknown_queue = create refuses (longer than 1024 bytes, "
        "not allowed by create_pattern, beyond create_limit): error, skip, default or dead_letter.",
        choices=ON_NULL_QUEUE),
    Key("apply_timeout", "number", 300.0,
        "Seconds one qsplit.apply_batch call may run on the target (statement_timeout) before it is cancelled, "
        "nothing applied, and the batch retried; 0 = no limit.", minimum=0.0),
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
    Key("read_ahead", "bool", False,
        "Overlap consecutive batches: read batch N+1 from the source into a second target session while the "
        "target applies batch N. Registers a second consumer, <pgq_consumer_id>.read_ahead, on the source "
        "queue; the real consumer then only moves to ticks the target has committed (docs/read-ahead.md). "
        "Turned off again, the driver unregisters the read-ahead consumer."),
    Key("copy_format", "choice", "auto",
        "Format of the COPY that carries each batch from the source to the target: auto (binary when both "
        "servers run the same PostgreSQL major, less CPU on both; text otherwise) or text (always).",
        choices=("auto", "text")),
    Key("logfile", "path", None, "Log file; without it the log goes to stderr. Safe under logrotate "
        "(copytruncate or move).", sample="~/log/%(job_name)s.log"),
    Key("log_size", "size", 10 * 1024 * 1024,
        "Rotate the log file when it reaches this size (bytes, or with k/M/G); 0 = never rotate.", minimum=0),
    Key("log_count", "integer", 3, "Rotated log files to keep.", minimum=0),
    Key("log_level", "choice", "info", "Least important log lines written: debug, info, warning or error. "
        "-v (debug) and -q (warning) on the command line win.", choices=("debug", "info", "warning", "error")),
    Key("idle_log_interval", "number", 300.0,
        "While there are no batches, log a keepalive line this often (seconds); 0 = never.", minimum=0.0),
    Key("keepalive_stats", "number", 300.0,
        "The original's stats heartbeat: after this many seconds without a batch, log {idle: N} (seconds "
        "since the last batch with events), as skytools does; also the idle figure of the next stats line.",
        minimum=0.0),
    Key("exception_sleep", "number", None,
        "Fixed seconds to wait after an error before trying the batch again (the original's behaviour, "
        "default 20 there). Unset: exponential backoff, 1 s doubling to 60 s.", minimum=0.0, sample="20"),
    Key("table_filter", "tables", None,
        "Comma-separated table names: only events whose ev_extra1 is one of them are moved; the others are "
        "consumed and dropped, as the original does. A name without a schema means public.name.",
        sample="table1, myschema.table2"),
    Key("logfmt_file", "logfmt", None, "Python logging format of the log file's lines (in the ini, %% for %). "
        "Default: the original's %(asctime)s %(process)s %(levelname)s %(message)s.",
        sample="%%(asctime)s %%(process)s %%(levelname)s %%(message)s"),
    Key("logfmt_console", "logfmt", None, "Format of the lines on stderr (see logfmt_file).",
        sample="%%(asctime)s %%(process)s %%(levelname)s %%(message)s"),
    Key("logfmt_file_verbose", "logfmt", None, "logfmt_file with -v. Default: logfmt_file.",
        sample="%%(asctime)s %%(process)s %%(levelname)s %%(name)s %%(message)s"),
    Key("logfmt_console_verbose", "logfmt", None, "logfmt_console with -v. Default: logfmt_console.",
        sample="%%(asctime)s %%(process)s %%(levelname)s %%(name)s %%(message)s"),
    Key("logdatefmt_file", "text", None, "strftime format of %(asctime)s in the log file (in the ini, %% for "
        "%). Default: 2024-01-31 12:00:00,123.", sample="%%Y-%%m-%%d %%H:%%M:%%S"),
    Key("logdatefmt_console", "text", None, "strftime format of %(asctime)s on stderr.",
        sample="%%H:%%M:%%S"),
    Key("logdatefmt_file_verbose", "text", None, "logdatefmt_file with -v. Default: logdatefmt_file.",
        sample="%%Y-%%m-%%d %%H:%%M:%%S"),
    Key("logdatefmt_console_verbose", "text", None, "logdatefmt_console with -v. Default: logdatefmt_console.",
        sample="%%H:%%M:%%S"),
    Key("pidfile", "path", None, "Pid file; needed by -d, and by -r/-s/-k to find the running process.",
        sample="~/pid/%(job_name)s.pid"),
    Key("use_skylog", "bool", False, "Skytools network logging: accepted for compatibility and ignored."),
    Key("pgq_lazy_fetch", "integer", 300,
        "The original's cursor fetch size: accepted for compatibility and not needed (the batch streams "
        "through COPY in bounded memory whatever its size).", minimum=0),
    Key("pgq_autocommit", "integer", 0,
        "The original's autocommit reading of the source: accepted for compatibility and not needed (each "
        "step commits where it must).", minimum=0),
    Key("config_format", "choice", "1", "1: %(name)s interpolation (configparser); 2: ${name} and "
        "${section:name} instead, as skytools' config_format = 2.", choices=("1", "2")),
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
# connection strings: interpolated as the original does when they can be,
# else taken as written; no other key can pull them in; never shown in a message
LITERAL_KEYS = tuple(k.name for k in KEYS if k.kind == "dsn")
ALIASES: dict[str, str] = {a: k.name for k in KEYS for a in k.aliases}


@dataclass(frozen=True)
class Config:
    """A checked config file.  Made by load() only, which passes every field:
    the defaults of the keys live in KEYS alone, not here."""

    path: Path
    job_name: str
    src_db: str
    dst_db: str
    pgq_queue_name: str
    pgq_consumer_id: str
    queue_field: str
    on_unknown_queue: str
    on_null_queue: str
    default_queue: str | None
    create_limit: int
    create_pattern: str | None
    create_fallback: str
    apply_timeout: float
    loop_delay: float
    connection_lifetime: float
    connect_timeout: int
    keepalive_idle: int
    keepalive_interval: int
    keepalive_count: int
    pgq_batch_collect_events: int | None
    pgq_batch_collect_interval: str | None
    pgq_keep_lag: str | None
    read_ahead: bool
    copy_format: str
    logfile: Path | None
    log_size: int
    log_count: int
    log_level: str
    idle_log_interval: float
    keepalive_stats: float
    exception_sleep: float | None
    table_filter: tuple[str, ...] | None
    logfmt_file: str | None
    logfmt_console: str | None
    logfmt_file_verbose: str | None
    logfmt_console_verbose: str | None
    logdatefmt_file: str | None
    logdatefmt_console: str | None
    logdatefmt_file_verbose: str | None
    logdatefmt_console_verbose: str | None
    pidfile: Path | None
    use_skylog: bool
    pgq_lazy_fetch: int
    pgq_autocommit: int
    config_format: str
    metrics_port: int | None
    metrics_addr: str
    metrics_top_queues: int
    section: str
    # the other sections of SECTIONS in the file, not used: section -> the
    # consumer name it would give (None when it cannot be read)
    other_sections: dict[str, str | None]
    # relative paths of the file are relative to this directory
    base_dir: Path
    # things worth a warning, logged by the caller once logging is set up
    warnings: tuple[str, ...]

    @property
    def queue_name(self) -> str:
        return self.pgq_queue_name

    @property
    def consumer_name(self) -> str:
        return self.pgq_consumer_id


_NOT_KEYS = {"path", "section", "other_sections", "base_dir", "warnings"}
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


def load(path: str | os.PathLike[str], overrides: dict[str, str] | None = None,
         base_dir: Path | None = None) -> Config:
    """Read and check the config file at *path*; *overrides* (``--set``)
    replace keys of the file.  Relative paths (the file's own, logfile,
    pidfile) are taken against *base_dir*, by default the current directory:
    a reload passes the first load's ``base_dir``.  Raises ConfigError with
    one line naming the file and the key."""
    base_dir = (base_dir or Path.cwd()).absolute()
    path = Path(path)
    path = path if path.is_absolute() else base_dir / path
    try:
        with path.open(encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a valid ini file: {_one_line(exc)}") from None

    # first without interpolation: which section, which syntax
    raw = configparser.RawConfigParser()
    try:
        raw.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid ini file: {_parse_error(exc)}") from None
    section = next((s for s in SECTIONS if raw.has_section(s)), None)
    if section is None:
        raise ConfigError(
            f"{path}: no [queue_splitter] section (also accepted: [queue_splitter3], [qsplit])"
        )
    config_format = (raw.get(section, "config_format", fallback="1") or "1").strip()
    if config_format not in ("1", "2"):
        raise ConfigError(f"{path}: [{section}] config_format = {config_format!r}: must be 1 (%(name)s) "
                          "or 2 (${name})")

    # then as the original reads it: format 1 is configparser's %(name)s,
    # format 2 its ${name} / ${section:name}
    extended = config_format == "2"
    interpolation: configparser.Interpolation = _ExtendedInterpolation() if extended else _BasicInterpolation()
    parser = configparser.ConfigParser(interpolation=interpolation)
    parser.read_string(text, source=str(path))

    def literal(value: str) -> str:
        return value.replace("$", "$$") if extended else value.replace("%", "%%")

    # the names skytools' Config defines for every file; a value the file
    # sets itself (in the section or [DEFAULT]) wins, as in skytools
    for name in [section] + [s for s in SECTIONS if s != section and parser.has_section(s)]:
        for key, value in (("job_name", path.stem), ("service_name", name), ("host_name", socket.gethostname()),
                           ("config_dir", str(path.parent)), ("config_file", str(path))):
            if not parser.has_option(name, key):
                parser.set(name, key, literal(value))
    warnings: list[str] = []
    # connection strings never go through the parser's interpolation (nor
    # its checks on set, whose messages quote the value): --set ones are
    # kept aside and win over the file's
    literal_overrides = {k: v for k, v in (overrides or {}).items() if k in LITERAL_KEYS}
    try:
        for key, value in (overrides or {}).items():
            if key not in LITERAL_KEYS:
                parser.set(section, key, value)
    except ValueError as exc:  # ExtendedInterpolation checks $ syntax on set
        raise ConfigError(f"{path}: --set: {_one_line(exc)}") from None

    unknown = sorted(k for k in parser.options(section)
                     if k not in KEYS_BY_NAME and k not in ALIASES and k not in INTERPOLATION_NAMES)
    if unknown:
        warnings.append(
            f"{path}: [{section}] unknown key(s) ignored: {', '.join(unknown)} (see qsplit-driver --ini for the known keys)"
        )

    reader = _Reader(parser, section, path, base_dir, literal_overrides)
    values: dict[str, object] = {}
    for key in KEYS:
        values[key.name] = reader.read(key)
    if not values["job_name"]:
        values["job_name"] = path.stem
    if not values["pgq_consumer_id"]:
        values["pgq_consumer_id"] = values["job_name"]
    if values["on_unknown_queue"] == "create" and values["create_fallback"] == "default" and not values["default_queue"]:
        raise ConfigError(f"{path}: [{section}] create_fallback = default needs default_queue to be set")
    for policy in ("on_unknown_queue", "on_null_queue"):
        if values[policy] == "default" and not values["default_queue"]:
            raise ConfigError(f"{path}: [{section}] {policy} = default needs default_queue to be set")
    for key in reader.taken_as_written:
        # named, never shown: the value may hold a password
        sign = "$" if extended else "%"
        warnings.append(f"{path}: [{section}] {key} holds a {sign} that does not interpolate (queue_splitter "
                        f"would refuse the file): taken as written, every {sign} literal")
    if values["use_skylog"]:
        warnings.append(f"{path}: [{section}] use_skylog is not supported and is ignored; "
                        "the log goes to logfile (or stderr)")
    others = {s: _consumer_of(parser, s) for s in SECTIONS if s != section and parser.has_section(s)}
    return Config(path=path, section=section, other_sections=others, base_dir=base_dir,  # type: ignore[arg-type]
                  warnings=tuple(warnings), **values)


def _consumer_of(parser: configparser.ConfigParser, section: str) -> str | None:
    """The consumer name *section* would give, for the log line that says
    which section is used; None when that section cannot be read."""
    try:
        for key in ("pgq_consumer_id", "consumer_name", "job_name"):
            value = (parser.get(section, key, fallback=None) or "").strip()
            if value:
                return value
    except configparser.Error:
        pass
    return None


class _NoLiteralKeys:
    """Interpolation that cannot pull a connection string into another key
    (where it would be shown, as a log file path say)."""

    def before_get(self, parser, section, option, value, defaults):  # type: ignore[no-untyped-def]
        visible = {k: v for k, v in defaults.items() if k not in LITERAL_KEYS}
        return super().before_get(parser, section, option, value, visible)  # type: ignore[misc]


class _BasicInterpolation(_NoLiteralKeys, configparser.BasicInterpolation):
    pass


class _ExtendedInterpolation(_NoLiteralKeys, configparser.ExtendedInterpolation):
    pass


class _Reader:
    def __init__(self, parser: configparser.ConfigParser, section: str, path: Path, base_dir: Path,
                 literal_overrides: dict[str, str] | None = None) -> None:
        self._parser = parser
        self._section = section
        self._path = path
        self._base_dir = base_dir
        self._literal_overrides = literal_overrides or {}
        # connection strings that could not be interpolated, so were taken as written
        self.taken_as_written: list[str] = []

    def _where(self, key: str) -> str:
        return f"{self._path}: [{self._section}] {key}"

    def _connection_string(self, key: str) -> str | None:
        """src_db / dst_db as the original reads them (``%%`` is one ``%``,
        ``%(job_name)s`` expands), so its ini works unchanged; a value the
        original could not read at all (a lone ``%`` in a password) is taken
        as written rather than refused, and its text is never quoted."""
        try:
            return self._parser.get(self._section, key, fallback=None)
        except configparser.InterpolationError:
            self.taken_as_written.append(key)
            return self._parser.get(self._section, key, raw=True, fallback=None)

    def _raw(self, key: str) -> str | None:
        try:
            if key in LITERAL_KEYS:
                value = self._literal_overrides.get(key)
                if value is None:
                    value = self._connection_string(key)
            else:
                value = self._parser.get(self._section, key, fallback=None)
        except configparser.InterpolationError as exc:
            # configparser's messages quote the value (and whatever it
            # pulled in, a connection string say): name the key only
            raise ConfigError(f"{self._where(key)}: {_interpolation_error(exc)}") from None
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
            if key.kind == "path":
                return _path(raw, self._base_dir)
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


def _path(raw: str, base_dir: Path) -> Path:
    # resolved here, once: daemon mode changes to / later, and a reload
    # passes the same base_dir
    path = Path(os.path.expanduser(raw))
    return path if path.is_absolute() else base_dir / path


def _tables(raw: str, key: Key) -> tuple[str, ...]:
    # as python-pgq's table_filter: a name without a schema is public's
    names = tuple(t.strip() for t in raw.split(",") if t.strip())
    if not names:
        raise ValueError("no table names")
    return tuple(t if "." in t else f"public.{t}" for t in names)


def _logfmt(raw: str, key: Key) -> str:
    try:
        logging.Formatter(raw, validate=True)
    except ValueError:
        raise ValueError("not a logging format (e.g. %%(asctime)s %%(levelname)s %%(message)s; "
                         "in the ini write %% for %)") from None
    return raw


_PARSERS: dict[str, Callable[[str, Key], object]] = {
    "text": lambda raw, key: raw,
    "dsn": _dsn,
    "path": lambda raw, key: Path(raw),  # resolved by _Reader against the base directory
    "tables": _tables,
    "logfmt": _logfmt,
    "number": _number,
    "integer": _integer,
    "size": _size,
    "interval": _interval,
    "bool": _bool,
    "choice": _choice,
}
assert {k.kind for k in KEYS} <= set(_PARSERS)


def sample_ini(section: str = "queue_splitter", overrides: dict[str, str] | None = None) -> str:
    """A commented config file with every key: required keys set to an
    example, the others commented out at their default.  *overrides*
    (``--set``, as the original's --ini applies them) are written as set
    values in place of the example or default."""
    overrides = dict(overrides or {})
    out = [
        "# qsplit-driver config (a Skytools queue_splitter ini file works unchanged).",
        "# Section [queue_splitter3], [queue_splitter] or [qsplit]; %(job_name)s,",
        "# %(service_name)s, %(host_name)s, %(config_dir)s are replaced (${name} with",
        "# config_format = 2), ~ in paths by the home directory.",
        f"[{section}]",
    ]
    for key in KEYS:
        out.append("")
        out.extend(textwrap.wrap(key.help, width=76, initial_indent="# ", subsequent_indent="# "))
        if key.aliases:
            out.append(f"# Also accepted as: {', '.join(key.aliases)}.")
        if key.choices:
            out.append(f"# One of: {', '.join(key.choices)}.")
        if key.name in overrides:
            out.append(f"{key.name} = {overrides.pop(key.name)}")
        elif key.required:
            out.append(f"{key.name} = {key.sample}")
        elif key.name == "job_name":
            out.append("job_name = my_splitter")
        elif key.default is not None:
            out.append(f"#{key.name} = {key.default_text}")
        else:
            out.append(f"#{key.name} = {key.sample or ''}".rstrip())
    if overrides:
        out.append("")
        out.append("# set with --set, not keys qsplit-driver knows:")
        out.extend(f"{k} = {v}" for k, v in overrides.items())
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


def _interpolation_error(exc: configparser.InterpolationError) -> str:
    """What is wrong with an interpolation, without the values configparser
    quotes (they may hold a password pulled in from another key)."""
    if isinstance(exc, configparser.InterpolationMissingOptionError):
        if exc.reference in LITERAL_KEYS:
            return f"refers to {exc.reference}: connection strings cannot be interpolated into other keys"
        return f"refers to {exc.reference!r}, which is not set (write %% or $$ for a literal % or $)"
    if isinstance(exc, configparser.InterpolationDepthError):
        return "interpolation nested too deep (a reference loop?)"
    return ("bad interpolation syntax: % must be followed by % or (name)s, $ by $ or {name} "
            "(write %% or $$ for a literal % or $)")


def _parse_error(exc: configparser.Error) -> str:
    """A parse error of the file, naming lines, never quoting them (a line
    may be part of a connection string)."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno}: a key before any [section] header"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(n) for n, _ in exc.errors)
        return f"line(s) {lines}: not 'key = value', a [section] header or a comment"
    return _one_line(exc)  # duplicate section or key: names and line numbers only


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
