"""Expand the function manifest (sql/functions.sql) into one SQL text.

The manifest is psql-style: plain SQL plus ``\\ir <file>`` lines that include
a file relative to the including one.  psql is not needed: the lines are
expanded here so migrations/env.py can run the result through a raw DBAPI
cursor, and the offline script can print it.
"""

from __future__ import annotations

from pathlib import Path

from . import paths


class ManifestError(Exception):
    """The manifest names a file that is missing or includes itself."""


def expand(manifest: Path | None = None) -> str:
    """Return the manifest with every ``\\ir``/``\\i`` line replaced by the text
    of the file it names (recursively)."""
    return _expand(manifest or paths.sql_manifest(), ())


def _expand(path: Path, seen: tuple[Path, ...]) -> str:
    path = path.resolve()
    if path in seen:
        raise ManifestError(f"{path}: included from itself")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read SQL file {path}: {exc.strerror}") from exc
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        words = line.split()
        if len(words) == 2 and words[0] in ("\\ir", "\\i", "\\include_relative", "\\include"):
            out.append(f"-- {words[0]} {words[1]}\n")
            out.append(_expand(path.parent / words[1], seen + (path,)))
            out.append("\n")
        elif line.lstrip().startswith("\\"):
            raise ManifestError(f"{path}: unsupported psql command: {line.strip()}")
        else:
            out.append(line)
    return "".join(out)
