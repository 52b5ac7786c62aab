"""The PostgreSQL majors qsplit supports, and the check the installer runs.

The range is exactly what CI tests (``.ci/run``: the machine's default server,
and ``scripts/pg-matrix.sh`` for every other major): widen it only together
with the matrix.

``QSPLIT_TEST_SUPPORTED_MAJORS`` (e.g. ``16-18``) narrows the range for the
tests, so that they can see the refusal on a real server of a major that is
supported; it can never widen it.
"""

from __future__ import annotations

import os

OLDEST = 14
NEWEST = 18
NARROW_ENV = "QSPLIT_TEST_SUPPORTED_MAJORS"


class UnsupportedServer(Exception):
    """The server's major is outside the supported range (one-line message)."""


def supported_range() -> tuple[int, int]:
    """(oldest, newest) supported major, after the test-only narrowing."""
    narrow = os.environ.get(NARROW_ENV, "").strip()
    if not narrow:
        return OLDEST, NEWEST
    try:
        low_text, _, high_text = narrow.partition("-")
        low, high = int(low_text), int(high_text or low_text)
    except ValueError:
        raise UnsupportedServer(f"{NARROW_ENV}={narrow!r}: expected MAJOR or OLDEST-NEWEST, e.g. 16-18") from None
    if not OLDEST <= low <= high <= NEWEST:
        raise UnsupportedServer(f"{NARROW_ENV}={narrow!r} may only narrow the supported range {OLDEST}-{NEWEST}")
    return low, high


def describe_range() -> str:
    low, high = supported_range()
    return f"PostgreSQL {low} to {high}" if low != high else f"PostgreSQL {low}"


def check(server_version_num: int, server_version: str) -> None:
    """Raise UnsupportedServer unless the server's major is supported."""
    low, high = supported_range()
    major = server_version_num // 10000
    if not low <= major <= high:
        raise UnsupportedServer(
            f"the target server runs PostgreSQL {server_version}, but qsplit supports {describe_range()} "
            f"(the majors its CI tests): use a server of a supported major"
        )


def offline_check_sql() -> str:
    """The same check as a DO block, for the top of the offline script (the
    range is the one in force when the script is written)."""
    low, high = supported_range()
    return f"""\
do $qsplit_check$
begin
    if pg_catalog.current_setting('server_version_num')::int / 10000 not between {low} and {high} then
        raise exception 'qsplit: this server runs PostgreSQL %, but qsplit supports {describe_range()} (the majors its CI tests)',
                pg_catalog.current_setting('server_version')
            using errcode = 'feature_not_supported',
                  hint = 'Apply this script on a server of a supported major.';
    end if;
end;
$qsplit_check$;"""
