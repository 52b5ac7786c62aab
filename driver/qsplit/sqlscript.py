"""Write the offline SQL script for DBAs: ``python -m qsplit.sqlscript``.

    python -m qsplit.sqlscript [--from REV] [-o FILE_OR_DIR]

Without --from: a script that installs qsplit into a target database that has
pgq but no qsplit.  With --from REV: a script that upgrades a target at
revision REV to head.  Either is one transaction; apply it with
``psql -v ON_ERROR_STOP=1 -f FILE``.  ``make sql-script [FROM=REV]`` calls this.
No database connection is needed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alembic.util import CommandError

from . import install

log = logging.getLogger("qsplit")


def default_name(from_revision: str | None) -> str:
    head = install.head_revision()
    if from_revision:
        return f"qsplit-upgrade-{from_revision}-to-{head}.sql"
    return f"qsplit-install-{head}.sql"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m qsplit.sqlscript", description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="from_revision", metavar="REV",
                   help="revision the target database is at now (default: none, a fresh install)")
    p.add_argument("-o", "--output", default="-",
                   help="file to write, or an existing directory (or one ending in /) for the default "
                        "name qsplit-install-HEAD.sql / qsplit-upgrade-REV-to-HEAD.sql; - = stdout")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        text = install.sql_script(args.from_revision or None)
        name = default_name(args.from_revision or None)
    except CommandError as exc:
        log.error("%s", exc)
        return 2
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if args.output.endswith("/") or out.is_dir():
        out = out / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    sys.stdout.write(f"{out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
