"""qsplit-driver: the command line (switches compatible with queue_splitter)."""

from __future__ import annotations

import argparse
import logging
import sys

import psycopg2

from . import __version__, admin, logsetup, pidfile, status
from .config import ConfigError, Config, key_summary, load, parse_overrides, sample_ini
from .signals import DOUBLE_SIGINT_WINDOW, Control, Terminate
from .failpoints import Failpoints
from .splitter import Splitter

log = logging.getLogger("qsplit")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PIDFILE = 3
EXIT_LOCAL_FILE = 3  # a pid file or log file refused (a link not followed, no access)
# the original's status for a second instance ("Pidfile exists, another
# process running?"): scripts test for it
EXIT_ALREADY_RUNNING = 1
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
NAME
    qsplit-driver - split one PgQ queue into many queues on another database,
    exactly once; a drop-in replacement for Skytools' queue_splitter

SYNOPSIS
    qsplit-driver [-v|-q] [-d] [--once] [--set KEY=VALUE]... CONFIG.ini
    qsplit-driver -r|-s|-k CONFIG.ini
    qsplit-driver --register|--unregister|--rewind|--reset CONFIG.ini
    qsplit-driver --status [--json] CONFIG.ini
    qsplit-driver --ini

DESCRIPTION
    Reads batches of the PgQ queue pgq_queue_name on the source database
    src_db and puts every event into the queue on the target database dst_db
    whose name is in the event's queue_field (ev_extra1 by default).  Each
    batch is applied by one call of qsplit.apply_batch() on the target, which
    moves the consumer's position in the same transaction: after any crash
    the batch is applied again or recognised as applied, never lost or
    doubled.  The target needs the qsplit schema (make install-sql).

    An existing queue_splitter ini file works unchanged; so do init scripts
    using -d, -r, -s and -k.  When the target still has queue_splitter's
    pgq_ext.completed_tick row for the consumer, qsplit starts from it."""

EPILOG = """\
CONFIGURATION FILE
    An ini file with a section [queue_splitter3] or [queue_splitter] (or
    [qsplit]); with several, [qsplit] wins, then [queue_splitter3] (the one
    a Skytools 3.1+ queue_splitter reads).  %(job_name)s, %(service_name)s
    (the section), %(host_name)s and %(config_dir)s are replaced (${{name}}
    with config_format = 2), ~ by the home directory; relative paths are
    taken from the directory the driver started in.  Unknown keys are named
    in a warning; a bad value stops the driver with one line naming the key
    and the file (exit 2).  --ini prints a sample (with --set applied).  Keys:

{keys}

SIGNALS
    SIGHUP   re-read the config file and apply it between two batches
             (loop_delay, queue_field, log file and level, connection
             strings, ...); a bad file is logged and the old config kept.
    SIGINT   finish the batch in progress, then exit 0.  A second SIGINT
             within {sigint_window:g} s stops at once, like SIGTERM (exit 130).
    SIGTERM  stop at once: the open target transaction is rolled back, so
             nothing is half-applied; connections are closed, the pid file
             removed, exit 0.  The batch is applied by the next run.

EXIT STATUS
    0    done: --once found no more batches, a stop by SIGINT/SIGTERM, or a
         management or control switch succeeded; also -r/-s/-k with
         nothing running and --rewind with no target position (both
         warn), as the original
    1    error: --once met an error, --status found a problem, a management
         switch failed, or a database could not be reached; or another
         driver is already running with this pid file (as the original)
    2    usage or configuration error
    3    pid file or log file trouble: it cannot be written, or leads
         where the driver does not write (another user's link or file), or
         a management switch was refused because the driver is running
    130  stopped at once by a second SIGINT

    Without --once, database errors never end the driver: the error is logged
    once, then retried with exponential backoff (1 s doubling to 60 s).

FILES
    logfile  the log (rotated by log_size/log_count; logrotate may move or
             copy-truncate it); a foreground run writes to stderr as well.
             Every symbolic link on the way must belong to this user or
             root, and the file must be a regular file of theirs with no
             other hard link; anything else is refused (exit 3).
             Each batch logs the original's stats line, {{count: N,
             duration: D, idle: I}}, and qsplit's own line (batch id,
             ticks, lag, per-queue counts); {{idle: N}} after
             keepalive_stats seconds without a batch.
    pidfile  pid of the running driver; -d needs it, -r/-s/-k read it.

EXAMPLES
    qsplit-driver -d /etc/qsplit/splitter.ini     start in the background
    qsplit-driver -r /etc/qsplit/splitter.ini     reload the config
    qsplit-driver -s /etc/qsplit/splitter.ini     stop after the current batch
    qsplit-driver --status /etc/qsplit/splitter.ini
    qsplit-driver --status --json /etc/qsplit/splitter.ini
    qsplit-driver --once --set loop_delay=0 splitter.ini
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qsplit-driver",
        description=DESCRIPTION,
        epilog=EPILOG.format(keys=key_summary(), sigint_window=DOUBLE_SIGINT_WINDOW),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="the ini file (a queue_splitter ini file works unchanged)")
    p.add_argument("-V", "--version", action="version", version=f"qsplit-driver {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="log debug lines; -vv also logs every SQL statement")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("-d", "--daemon", action="store_true",
                   help="run in the background (needs pidfile); the log goes to logfile")
    p.add_argument("--once", action="store_true",
                   help="process every batch available now, then exit (0 = all done, 1 = error)")
    p.add_argument("--install-sql", action="store_true",
                   help="bring the qsplit schema of the config's dst_db to the newest revision "
                        "(tables, functions), then exit; needs no source tree")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--ini", action="store_true", help="print a sample config file with every key, then exit")
    ctl = p.add_argument_group("control a running driver (reads pidfile)")
    ctl.add_argument("-r", "--reload", dest="control", action="store_const", const="reload",
                     help="send SIGHUP: reload the config")
    ctl.add_argument("-s", "--stop", dest="control", action="store_const", const="stop",
                     help="send SIGINT: stop after the current batch")
    ctl.add_argument("-k", "--kill", dest="control", action="store_const", const="kill",
                     help="send SIGTERM: stop now, rolling back the open batch")
    mgmt = p.add_argument_group("consumer management (the driver must not be running)")
    mgmt.add_argument("--register", dest="manage", action="store_const", const="register",
                      help="register the consumer on the source queue (the driver also does this on start)")
    mgmt.add_argument("--unregister", dest="manage", action="store_const", const="unregister",
                      help="unregister the consumer from the source queue and clear its target position")
    mgmt.add_argument("--rewind", dest="manage", action="store_const", const="rewind",
                      help="move the source consumer back to the target's last applied tick")
    mgmt.add_argument("--reset", dest="manage", action="store_const", const="reset",
                      help="forget the target position: the next batch is applied whatever its ticks")
    mgmt.add_argument("--status", action="store_true",
                      help="print this consumer's source lag and pending events, then every consumer on the "
                           "target: position, lag, last batch, events per queue, dead letters waiting")
    mgmt.add_argument("--json", action="store_true", help="with --status: print it as JSON, for scripts")
    return p


def _level(cfg: Config | None, args: argparse.Namespace) -> int:
    if args.verbose or args.quiet:
        return logsetup.level_for(args.verbose, args.quiet)
    return getattr(logging, cfg.log_level.upper()) if cfg is not None else logging.INFO


def _setup_logging(cfg: Config, args: argparse.Namespace) -> None:
    # as the original: the log file, and stderr too unless in the background
    level = _level(cfg, args)
    logsetup.setup(logfile=cfg.logfile, log_size=cfg.log_size, log_count=cfg.log_count, level=level,
                   formats=logsetup.LineFormats.of(cfg, level), console=not args.daemon)


def _stderr_logging(args: argparse.Namespace, cfg: Config | None = None) -> None:
    level = _level(None, args)
    logsetup.setup(logfile=None, log_size=0, log_count=0, level=level, formats=logsetup.LineFormats.of(cfg, level))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ini:
        try:
            sys.stdout.write(sample_ini(overrides=parse_overrides(args.set)))
        except ConfigError as exc:
            print(f"qsplit-driver: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    if args.config is None:
        parser.print_usage(sys.stderr)
        print("qsplit-driver: error: the config file argument is required", file=sys.stderr)
        return EXIT_USAGE
    chosen = [name for name, on in (("-d", args.daemon), ("--once", args.once), ("-r/-s/-k", args.control),
                                    ("--register/--unregister/--rewind/--reset", args.manage),
                                    ("--status", args.status), ("--install-sql", args.install_sql)) if on]
    if len(chosen) > 1:
        print(f"qsplit-driver: error: {' and '.join(chosen)} cannot be combined", file=sys.stderr)
        return EXIT_USAGE
    if args.json and not args.status:
        print("qsplit-driver: error: --json goes with --status", file=sys.stderr)
        return EXIT_USAGE

    _stderr_logging(args)
    try:
        overrides = parse_overrides(args.set)
        cfg = load(args.config, overrides)
        failpoints = Failpoints.from_env()
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.install_sql:
        from . import install  # alembic and SQLAlchemy load only for this

        _stderr_logging(args, cfg)
        return install.install_sql(cfg.dst_db)
    if args.control:
        _stderr_logging(args, cfg)
        return _control(cfg, args.control)
    if args.manage or args.status:
        _stderr_logging(args, cfg)
        for warning in cfg.warnings:
            log.warning("%s", warning)
        return _status(cfg, args.json) if args.status else _manage(cfg, args.manage)
    return _run(cfg, args, overrides, failpoints)


def _control(cfg: Config, what: str) -> int:
    # nothing to signal is a warning and exit 0, as the original: init
    # scripts stop a service that is not running without failing
    if cfg.pidfile is None:
        log.warning("%s: no pidfile in the config, so no running driver to signal: nothing to do", cfg.path)
        return EXIT_OK
    try:
        pid = pidfile.send_signal(cfg.pidfile, what)
    except pidfile.NotRunning as exc:
        log.warning("%s: nothing to do", exc)
        return EXIT_OK
    except pidfile.PidfileError as exc:
        log.error("%s", exc)
        return EXIT_PIDFILE
    log.info("sent %s to qsplit-driver process %d", pidfile.CONTROL_SIGNALS[what].name, pid)
    return EXIT_OK


def _manage(cfg: Config, what: str) -> int:
    if cfg.pidfile is not None:
        try:
            pid = pidfile.running_pid(cfg.pidfile)
        except pidfile.PidfileError as exc:
            log.error("%s", exc)
            return EXIT_PIDFILE
        if pid is not None:
            log.error("qsplit-driver is running (process %d, pidfile %s): stop it first (-s), then --%s",
                      pid, cfg.pidfile, what)
            return EXIT_PIDFILE
    try:
        log.info("%s", admin.OPERATIONS[what](cfg))
    except admin.NothingToDo as exc:
        log.warning("%s", exc)
        return EXIT_OK
    except admin.ManagementError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    except psycopg2.Error as exc:
        first = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
        log.error("--%s failed: %s", what, first)
        return EXIT_ERROR
    return EXIT_OK


def _config_line(cfg: Config) -> str:
    """Which section of the file is used, and so which consumer: a file
    holding both a 2.x and a 3.x section reads differently in each."""
    line = f"config {cfg.path}: section [{cfg.section}], consumer {cfg.consumer_name!r}"
    for section, consumer in cfg.other_sections.items():
        line += f"; [{section}] (consumer {consumer!r}) is not used"
    return line


def _status(cfg: Config, as_json: bool = False) -> int:
    st = status.collect(cfg)
    sys.stdout.write(status.to_json(st) if as_json else status.render(st))
    return EXIT_OK if st.healthy else EXIT_ERROR


def _run(cfg: Config, args: argparse.Namespace, overrides: dict[str, str], failpoints: Failpoints) -> int:
    if args.daemon and cfg.pidfile is None:
        log.error("%s: daemon mode needs pidfile (set pidfile in the config)", cfg.path)
        return EXIT_USAGE
    if cfg.pidfile is not None:
        try:
            pid = pidfile.running_pid(cfg.pidfile)
        except pidfile.PidfileError as exc:
            log.error("%s", exc)
            return EXIT_PIDFILE
        if pid is not None:
            log.error("pidfile %s names running process %d: already running", cfg.pidfile, pid)
            return EXIT_ALREADY_RUNNING
    if cfg.metrics_port is not None:
        # checked before daemon mode detaches and the log moves to logfile,
        # so the error reaches the terminal and the exit status (the
        # server itself starts later: its thread would not cross the fork)
        from . import metrics

        try:
            metrics.check_listen(cfg.metrics_addr, cfg.metrics_port)
        except metrics.MetricsError as exc:
            log.error("%s: %s", cfg.path, exc)
            return EXIT_USAGE
    if cfg.logfile is not None:
        # checked before daemon mode detaches, so a refusal reaches the
        # terminal and the exit status
        try:
            logsetup.check_logfile(cfg.logfile)
        except logsetup.LogfileError as exc:
            log.error("%s", exc)
            return EXIT_LOCAL_FILE
        except OSError as exc:
            log.error("cannot open logfile %s: %s", cfg.logfile, exc.strerror or exc)
            return EXIT_LOCAL_FILE
    if args.daemon:
        if cfg.logfile is None:
            log.warning("daemon mode without logfile: the log is discarded")
        pidfile.daemonize()
    try:
        _setup_logging(cfg, args)
    except OSError as exc:  # the log file changed since check_logfile
        log.error("logfile %s: %s", cfg.logfile,
                  exc if isinstance(exc, logsetup.LogfileError) else exc.strerror or exc)
        return EXIT_LOCAL_FILE
    held: pidfile.PidFile | None = None
    if cfg.pidfile is not None:
        try:
            held = pidfile.claim(cfg.pidfile)
        except pidfile.AlreadyRunning as exc:
            log.error("%s", exc)
            return EXIT_ALREADY_RUNNING
        except pidfile.PidfileError as exc:
            log.error("%s", exc)
            return EXIT_PIDFILE
    server = None
    observer = None
    control = Control()
    control.install()
    try:
        if cfg.metrics_port is not None:
            from . import metrics  # prometheus_client loads only when metrics are on

            observer = metrics.Metrics(cfg)
            server = metrics.MetricsServer(observer.registry)
            try:
                server.start(cfg.metrics_addr, cfg.metrics_port)
            except metrics.MetricsError as exc:  # taken since check_listen
                log.error("%s: %s", cfg.path, exc)
                return EXIT_USAGE
        for warning in cfg.warnings:
            log.warning("%s", warning)
        log.info("%s", _config_line(cfg))
        log.info("starting: queue %r, consumer %r, routing by %s", cfg.queue_name, cfg.consumer_name,
                 cfg.queue_field)
        splitter = Splitter(cfg, failpoints, observer)
        splitter.log_statements = args.verbose >= 2
        control.on_stop_now(splitter.cancel)

        def reload() -> Config | None:
            try:
                # the first load's directory: relative paths stay where they
                # were, though daemon mode now runs in /
                new = load(cfg.path, overrides, base_dir=cfg.base_dir)
            except ConfigError as exc:
                log.error("reload failed, keeping the running config: %s", exc)
                return None
            # said before the new log settings apply, so it is seen at any level
            log.info("config reloaded from %s: loop_delay %g s, queue_field %s, log level %s, logfile %s",
                     new.path, new.loop_delay, new.queue_field, logging.getLevelName(_level(new, args)),
                     new.logfile or "stderr")
            try:
                _setup_logging(new, args)
            except OSError as exc:  # LogfileError included; the old handlers stay
                log.error("reload failed, keeping the running config: logfile %s: %s", new.logfile,
                          exc if isinstance(exc, logsetup.LogfileError) else exc.strerror or exc)
                return None
            for warning in new.warnings:
                log.warning("%s", warning)
            if observer is not None and server is not None:
                observer.configure(new)
                server.reconfigure(new.metrics_addr, new.metrics_port)
            elif new.metrics_port is not None:
                log.warning("reload: metrics_port set: the metrics server starts with the driver (restart it)")
            return new

        return splitter.run(once=args.once, control=control, reload=reload)
    except Terminate as exc:
        log.info("stopped by %s: open transactions rolled back, connections closed", exc.signame)
        return EXIT_OK if exc.signame == "SIGTERM" else EXIT_INTERRUPTED
    finally:
        control.uninstall()
        if server is not None:
            server.stop()
        if held is not None:
            held.release()
        logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
