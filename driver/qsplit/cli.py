"""qsplit-driver: the command line."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config import ConfigError, load
from .failpoints import Failpoints
from .splitter import Splitter

log = logging.getLogger("qsplit")

DESCRIPTION = """\
Move every event of one PgQ queue on the source database into the target
queue named by its queue_field (ev_extra1 by default) on the target database,
exactly once.  Reads a queue_splitter ini file unchanged."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qsplit-driver", description=DESCRIPTION)
    p.add_argument("config", help="ini file with a [queue_splitter] section")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("--once", action="store_true",
                   help="process every batch available now, then exit (0 = all done, 1 = error)")
    p.add_argument("--install-sql", action="store_true",
                   help="bring the qsplit schema of the config's dst_db to the newest revision "
                        "(tables, functions), then exit; needs no source tree")
    p.add_argument("-V", "--version", action="version", version=f"qsplit-driver {__version__}")
    return p


def setup_logging(config_logfile, verbose: int, quiet: bool, job_name: str) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler
    if config_logfile is not None:
        config_logfile.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(config_logfile, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(process)d %(levelname)s {job_name}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(None, args.verbose, args.quiet, "qsplit-driver")
    try:
        config = load(args.config)
        failpoints = Failpoints.from_env()
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    if args.install_sql:
        from . import install  # alembic and SQLAlchemy load only for this

        return install.install_sql(config.dst_db)
    setup_logging(config.logfile, args.verbose, args.quiet, config.job_name)
    log.info("starting: queue %r, consumer %r, routing by %s", config.queue_name, config.consumer_name, config.queue_field)
    try:
        return Splitter(config, failpoints).run(once=args.once)
    except KeyboardInterrupt:
        log.info("interrupted, exiting")
        return 130


if __name__ == "__main__":
    sys.exit(main())
