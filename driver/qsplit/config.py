"""Read a queue_splitter-style ini file into a Config.

The file an existing Skytools ``queue_splitter`` deployment uses works
unchanged: section ``[queue_splitter]`` (also ``[queue_splitter3]`` of
Skytools 3.1+, or ``[qsplit]``), ``%(job_name)s`` interpolation, ``~`` in
paths.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

SECTIONS = ("queue_splitter", "queue_splitter3", "qsplit")

# routing policies (issue 4): what qsplit.apply_batch does with an event whose
# target queue is missing or refuses inserts, or whose routing value is NULL
ON_UNKNOWN_QUEUE = ("error", "skip", "create", "default", "dead_letter")
ON_NULL_QUEUE = ("error", "skip", "default", "dead_letter")


class ConfigError(Exception):
    """The config file is missing, unreadable or has a bad value; the message
    names the file and the key."""


@dataclass(frozen=True)
class Config:
    path: Path
    job_name: str
    src_db: str
    dst_db: str
    queue_name: str
    consumer_name: str
    queue_field: str = "extra1"
    loop_delay: float = 1.0
    logfile: Path | None = None
    pidfile: Path | None = None
    on_unknown_queue: str = "error"
    on_null_queue: str = "error"
    default_queue: str | None = None


def load(path: str | os.PathLike[str]) -> Config:
    """Read and check the config file at *path*."""
    path = Path(path)
    parser = configparser.ConfigParser(
        interpolation=configparser.BasicInterpolation(),
        defaults={"job_name": path.stem},
    )
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a valid ini file: {_one_line(exc)}") from None

    section = next((s for s in SECTIONS if parser.has_section(s)), None)
    if section is None:
        raise ConfigError(
            f"{path}: no [{SECTIONS[0]}] section (also accepted: "
            + ", ".join(f"[{s}]" for s in SECTIONS[1:])
            + ")"
        )
    reader = _Reader(parser, section, path)

    job_name = reader.text("job_name")
    queue_name = reader.text("pgq_queue_name", alias="queue_name", required=True)
    policies = _policies(reader)
    return Config(
        path=path,
        job_name=job_name,
        src_db=reader.text("src_db", required=True),
        dst_db=reader.text("dst_db", required=True),
        queue_name=queue_name,
        consumer_name=reader.text("pgq_consumer_id", alias="consumer_name") or job_name,
        queue_field=reader.text("queue_field") or "extra1",
        loop_delay=reader.number("loop_delay", 1.0, minimum=0.0),
        logfile=reader.path("logfile"),
        pidfile=reader.path("pidfile"),
        **policies,
    )


def _policies(reader: "_Reader") -> dict:
    on_unknown = reader.choice("on_unknown_queue", ON_UNKNOWN_QUEUE)
    on_null = reader.choice("on_null_queue", ON_NULL_QUEUE)
    default_queue = reader.text("default_queue") or None
    if default_queue is None and "default" in (on_unknown, on_null):
        key = "on_unknown_queue" if on_unknown == "default" else "on_null_queue"
        raise ConfigError(f"{reader.where(key)} = default needs default_queue to be set")
    return {"on_unknown_queue": on_unknown, "on_null_queue": on_null, "default_queue": default_queue}


class _Reader:
    def __init__(self, parser: configparser.ConfigParser, section: str, path: Path) -> None:
        self._parser = parser
        self._section = section
        self._path = path

    def _raw(self, key: str) -> str | None:
        try:
            value = self._parser.get(self._section, key, fallback=None)
        except configparser.Error as exc:
            raise ConfigError(f"{self._path}: [{self._section}] {key}: {_one_line(exc)}") from None
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, key: str, *, alias: str | None = None, required: bool = False) -> str:
        value = self._raw(key)
        if value is None and alias is not None:
            value = self._raw(alias)
        if value is None and required:
            also = f" (or {alias})" if alias else ""
            raise ConfigError(f"{self._path}: [{self._section}] {key}{also} is required but not set")
        return value or ""

    def where(self, key: str) -> str:
        return f"{self._path}: [{self._section}] {key}"

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        """One of *choices* (the first is the default), case-insensitive."""
        value = self._raw(key)
        if value is None:
            return choices[0]
        if value.lower() not in choices:
            raise ConfigError(f"{self.where(key)} = {value!r} must be one of {', '.join(choices)}")
        return value.lower()

    def number(self, key: str, default: float, *, minimum: float) -> float:
        value = self._raw(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(
                f"{self._path}: [{self._section}] {key} = {value!r} is not a number"
            ) from None
        if not number >= minimum:  # also catches nan
            raise ConfigError(f"{self._path}: [{self._section}] {key} = {value!r} must be >= {minimum:g}")
        return number

    def path(self, key: str) -> Path | None:
        value = self._raw(key)
        return Path(os.path.expanduser(value)) if value else None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
