"""make bench: qsplit's throughput, memory and latency side by side with
the COPY limit of the same server, measured in one run on the same data.

Creates its own source and target databases (names configurable; a
database is only ever dropped when the bench made it), fills the source
queues, runs every measurement --repeats times (interleaved, so machine
load hits them alike), prints one table of medians with ratios and writes
every figure to a JSON file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import report
import scenarios
from scenarios import BenchError, Context
from workload import Server, fill_queue, setup_databases

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = ("limit", "standard", "small_batches", "big_batch", "per_event", "latency")
LOOP_DELAY = 0.1


@dataclass(frozen=True)
class Sizes:
    standard: int = 200_000
    batch: int = 10_000
    small_batch: int = 100
    big: int = 1_000_000
    per_event: int = 10_000
    latency_seconds: float = 15.0
    latency_rate: float = 200.0


QUICK = Sizes(standard=2_000, batch=500, small_batch=50, big=5_000, per_event=200, latency_seconds=1.5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.environ.get("QSPLIT_BENCH_SERVER", "host=127.0.0.1"),
                   help="libpq conninfo of the server, without dbname (default: host=127.0.0.1)")
    p.add_argument("--src-db", default=os.environ.get("QSPLIT_BENCH_SRC_DB", "qsplit_bench_src"))
    p.add_argument("--dst-db", default=os.environ.get("QSPLIT_BENCH_DST_DB", "qsplit_bench_dst"))
    p.add_argument("--repeats", type=int, default=None, help="runs of each measurement (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the bench works, measures nothing")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset of: " + ", ".join(SCENARIOS))
    p.add_argument("--json", type=Path, default=None, help="where to write every figure (default bench-results/bench-<time>.json)")
    p.add_argument("--phases", action="store_true",
                   help="also time each step of the driver loop in the standard and small-batch runs")
    p.add_argument("--keep", action="store_true", help="keep the bench databases afterwards")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    # the driver's per-batch log lines go to its logfile, as in production
    logging.getLogger("qsplit").propagate = False
    sizes = QUICK if args.quick else Sizes()
    server = Server(args.server)
    json_path = args.json or REPO / "bench-results" / time.strftime("bench-%Y%m%dT%H%M%S.json")
    load_before = report.loadavg()

    log.info("creating databases %s and %s", args.src_db, args.dst_db)
    setup_databases(server, args.src_db, args.dst_db)
    try:
        with tempfile.TemporaryDirectory(prefix="qsplit-bench-") as tmp:
            workdir = Path(tmp)
            (workdir / "log").mkdir()
            ctx = Context(server, args.src_db, args.dst_db, workdir)
            runs = run_all(ctx, sizes, args)
        summary = report.summarize(runs, LOOP_DELAY * 1000)
        load_after = report.loadavg()
        version = server.execute("postgres", "show server_version")[0][0]
        settings = dict(server.execute(
            "postgres",
            "select name, current_setting(name) from pg_settings where name in"
            " ('shared_buffers', 'temp_buffers', 'work_mem', 'synchronous_commit', 'fsync', 'wal_level',"
            "  'max_wal_size', 'checkpoint_timeout')",
        ))
        document = {
            "sizes": asdict(sizes),
            "repeats": args.repeats,
            "quick": args.quick,
            "machine": report.machine(version, settings),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "runs": runs,
            "summary": summary,
        }
        report.write_json(json_path, document)
        text = report.table(summary, asdict(sizes))
        print(text)
        if args.phases:
            print()
            print(report.phases_table(runs))
        print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); "
              f"{args.repeats} run(s) each, medians; every figure in {json_path}")
    finally:
        if not args.keep:
            server.drop_database(args.src_db)
            server.drop_database(args.dst_db)
    return 0


def run_all(ctx: Context, sizes: Sizes, args: argparse.Namespace) -> dict[str, list[dict]]:
    only = set(args.only)
    server, src = ctx.server, ctx.src_db
    std = small = big = lat = None
    if only & {"limit", "standard", "per_event"}:
        std = fill_queue(server, src, "bench_std", sizes.standard, sizes.batch)
    if "small_batches" in only:
        small = fill_queue(server, src, "bench_small", sizes.standard, sizes.small_batch)
    if "big_batch" in only:
        big = fill_queue(server, src, "bench_big", sizes.big, sizes.big)
    if "latency" in only:
        lat = fill_queue(server, src, "bench_latency", 0, 1)

    runs: dict[str, list[dict]] = {name: [] for name in SCENARIOS if name in only}
    for r in range(1, args.repeats + 1):
        # one round of everything, so a loaded moment hits all measurements
        if "limit" in only:
            _record(runs, "limit", r, scenarios.limit(ctx, std))
        if "standard" in only:
            _record(runs, "standard", r, scenarios.splitter_run(ctx, std, f"std_r{r}", args.phases))
        if "small_batches" in only:
            _record(runs, "small_batches", r, scenarios.splitter_run(ctx, small, f"small_r{r}", args.phases))
        if "per_event" in only:
            _record(runs, "per_event", r, scenarios.per_event(ctx, std, f"naive_r{r}", sizes.per_event))
        if "big_batch" in only:
            _record(runs, "big_batch", r, scenarios.big_batch(ctx, big, f"big_r{r}"))
        if "latency" in only:
            _record(runs, "latency", r, scenarios.latency(
                ctx, lat, f"lat_r{r}", sizes.latency_seconds, rate=sizes.latency_rate, loop_delay=LOOP_DELAY))
    return runs


def _record(runs: dict[str, list[dict]], name: str, r: int, figures: dict) -> None:
    figures = {"run": r, "loadavg_1min": report.loadavg()[0], **figures}
    runs[name].append(figures)
    shown = ", ".join(f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    log.info("%s: %s", name, shown)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log.error("bench failed: %s", exc)
        sys.exit(1)
