"""make bench: qsplit's throughput, memory and latency side by side with
the COPY limit L and the original queue_splitter's algorithm, measured in
one run on the same data, with the target on the source's server and on a
second server.

Creates its own source and target databases (names configurable; a
database is only ever dropped when the bench made it), fills the source
queues once, runs every measurement --repeats times (interleaved, so
machine load hits them alike), prints one table of medians with ratios,
writes every figure to a JSON file and draws ev/s by batch size (PNG).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import original
import plot
import report
import scenarios
from scenarios import BenchError, Context
from workload import Server, fill_queue, setup_databases

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
TARGET_CLUSTER_SCRIPT = REPO / "scripts" / "target-cluster.sh"
MODES = ("one", "two")
# throughput scenarios run in every mode; the others on one server only
SCENARIOS = ("limit", "qsplit", "qsplit_seq", "original", "halves", "big_batch", "per_event", "latency")
ONE_SERVER_ONLY = ("big_batch", "per_event", "latency")
LOOP_DELAY = 0.1


@dataclass(frozen=True)
class Sizes:
    batch_sizes: tuple[int, ...] = (10_000, 1_000, 100)
    # events per run: 20 batches of 10,000, 100 of 1,000, 200 of 100 (the
    # small batches are bound by per-batch costs: more of them would only
    # make make bench longer)
    events: int = 200_000          # batches of 10,000 events or more
    mid_events: int = 100_000      # batches of 1,000 to 9,999
    small_events: int = 20_000     # smaller batches
    big: int = 1_000_000
    per_event: int = 10_000
    latency_seconds: float = 10.0
    latency_rate: float = 200.0

    def events_for(self, batch_size: int) -> int:
        if batch_size >= 10_000:
            return self.events
        return self.mid_events if batch_size >= 1_000 else self.small_events


QUICK = Sizes(batch_sizes=(500, 50), events=2_000, mid_events=1_000, small_events=500, big=5_000, per_event=200,
              latency_seconds=1.5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.environ.get("QSPLIT_BENCH_SERVER", "host=127.0.0.1"),
                   help="libpq conninfo of the (source) server, without dbname (default: host=127.0.0.1)")
    p.add_argument("--target-server", default=os.environ.get("QSPLIT_BENCH_TARGET_SERVER"),
                   help="libpq conninfo of the second server of the two-server mode, without dbname "
                        "(default: the cluster scripts/target-cluster.sh makes and starts, on "
                        "QSPLIT_TARGET_PORT, 5433 unless set)")
    p.add_argument("--modes", default=",".join(MODES),
                   help="one: target database on the source's server; two: on a second server (default: both)")
    p.add_argument("--src-db", default=os.environ.get("QSPLIT_BENCH_SRC_DB", "qsplit_bench_src"))
    p.add_argument("--dst-db", default=os.environ.get("QSPLIT_BENCH_DST_DB", "qsplit_bench_dst"))
    p.add_argument("--batch-sizes", default=None,
                   help="comma-separated events per batch (default 10000,1000,100)")
    p.add_argument("--repeats", type=int, default=None, help="runs of each measurement (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the bench works, measures nothing")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated subset of: " + ", ".join(SCENARIOS))
    p.add_argument("--json", type=Path, default=None, help="where to write every figure (default bench-results/bench-<time>.json)")
    p.add_argument("--plot", type=Path, default=None,
                   help="where to draw ev/s by batch size (default: the JSON's path with .png)")
    p.add_argument("--phases", action="store_true",
                   help="also time each step of the driver loop in the qsplit runs")
    p.add_argument("--keep", action="store_true", help="keep the bench databases afterwards")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(args.modes) - set(MODES) or not args.modes:
        p.error("--modes takes one, two or one,two")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    sizes = QUICK if args.quick else Sizes()
    if args.batch_sizes:
        sizes = Sizes(**{**asdict(sizes), "batch_sizes": tuple(int(b) for b in args.batch_sizes.split(","))})
    args.sizes = sizes
    if "original" in args.only and original.available() is not None:
        p.error(original.available())
    return args


def target_server(args: argparse.Namespace, source: Server) -> Server:
    """The second server: --target-server, else the project's own target
    cluster (made and started idempotently by scripts/target-cluster.sh)."""
    if args.target_server:
        return Server(args.target_server)
    done = subprocess.run([str(TARGET_CLUSTER_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise BenchError(f"{TARGET_CLUSTER_SCRIPT.name} could not provide the target cluster (see above); "
                         "or name a server with --target-server")
    port = done.stdout.strip().splitlines()[-1]
    return Server(f"host=127.0.0.1 port={port}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    # the driver's per-batch log lines go to its logfile, as in production
    logging.getLogger("qsplit").propagate = False
    sizes = args.sizes
    server = Server(args.server)
    second = target_server(args, server) if "two" in args.modes else None
    json_path = args.json or REPO / "bench-results" / time.strftime("bench-%Y%m%dT%H%M%S.json")
    plot_path = args.plot or json_path.with_suffix(".png")
    load_before = report.loadavg()

    targets = {"one": server, **({"two": second} if second is not None else {})}
    made: list[tuple[Server, str]] = []
    try:
        log.info("creating databases %s and %s", args.src_db, args.dst_db)
        setup_databases(server, args.src_db, [(s, args.dst_db) for s in targets.values()], made)
        with tempfile.TemporaryDirectory(prefix="qsplit-bench-") as tmp:
            workdir = Path(tmp)
            (workdir / "log").mkdir()
            pids = {srv: srv.postmaster_pid() for srv in targets.values()}
            contexts = {mode: Context(server, dst, args.src_db, args.dst_db, workdir, mode,
                                      tuple(p for p in (pids[server], pids[dst]) if p is not None))
                        for mode, dst in targets.items() if mode in args.modes}
            runs = run_all(contexts, sizes, args)
        summary = report.summarize(runs, sizes.batch_sizes, LOOP_DELAY * 1000)
        load_after = report.loadavg()
        servers = {mode: report.server_info(ctx.dst) for mode, ctx in contexts.items()}
        document = {
            "sizes": asdict(sizes),
            "repeats": args.repeats,
            "quick": args.quick,
            "machine": report.machine(servers),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "runs": runs,
            "summary": summary,
        }
        report.write_json(json_path, document)
        print(report.table(summary, asdict(sizes)))
        if args.phases:
            print()
            print(report.phases_table(runs))
        drawn = plot.draw(summary, plot_path)
        print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); "
              f"{args.repeats} run(s) each, medians; every figure in {json_path}"
              + (f"; picture {plot_path}" if drawn else f"; no picture ({plot.missing()})"))
    finally:
        if not args.keep:
            for srv, db in made:
                srv.drop_database(db)
    return 0


def run_all(contexts: dict[str, Context], sizes: Sizes, args: argparse.Namespace) -> dict[str, dict[str, list[dict]]]:
    """runs[mode][measurement] = one dict of figures per repeat; the
    measurement names carry the batch size (qsplit_10000, original_100)."""
    only = set(args.only)
    any_ctx = next(iter(contexts.values()))
    server, src = any_ctx.src, any_ctx.src_db
    queues = {}
    if only & {"limit", "qsplit", "qsplit_seq", "original", "halves", "per_event"}:
        for bs in sizes.batch_sizes:
            queues[bs] = fill_queue(server, src, f"bench_b{bs}", sizes.events_for(bs), bs)
    big = fill_queue(server, src, "bench_big", sizes.big, sizes.big) if "big_batch" in only else None
    lat = fill_queue(server, src, "bench_latency", 0, 1) if "latency" in only else None
    limit_queue = queues.get(max(sizes.batch_sizes)) if queues else None

    runs: dict[str, dict[str, list[dict]]] = {mode: {} for mode in contexts}
    for r in range(1, args.repeats + 1):
        # one round of everything, so a loaded moment hits all measurements
        for mode, ctx in contexts.items():
            out = runs[mode]
            if "limit" in only:
                _record(out, mode, "limit", r, scenarios.limit(ctx, limit_queue))
            for bs in sizes.batch_sizes:
                if "qsplit" in only:  # read_ahead = 1
                    _record(out, mode, f"qsplit_{bs}", r,
                            scenarios.splitter_run(ctx, queues[bs], f"qs_{mode}_{bs}_r{r}", args.phases))
                if "qsplit_seq" in only:  # read_ahead = 0, the default
                    _record(out, mode, f"qsplit_seq_{bs}", r,
                            scenarios.splitter_run(ctx, queues[bs], f"qseq_{mode}_{bs}_r{r}", args.phases,
                                                   read_ahead=False))
                if "original" in only:
                    _record(out, mode, f"original_{bs}", r,
                            scenarios.original_run(ctx, queues[bs], f"orig_{mode}_{bs}_r{r}"))
                if "halves" in only:
                    _record(out, mode, f"halves_{bs}", r,
                            scenarios.halves(ctx, queues[bs], f"halves_{mode}_{bs}_r{r}"))
            if mode != "one":
                continue
            if "per_event" in only:
                _record(out, mode, "per_event", r,
                        scenarios.per_event(ctx, queues[max(sizes.batch_sizes)], f"naive_r{r}", sizes.per_event))
            if "big_batch" in only:
                _record(out, mode, "big_batch", r, scenarios.big_batch(ctx, big, f"big_r{r}"))
            if "latency" in only:
                _record(out, mode, "latency", r, scenarios.latency(
                    ctx, lat, f"lat_r{r}", sizes.latency_seconds, rate=sizes.latency_rate, loop_delay=LOOP_DELAY))
    return runs


def _record(runs: dict[str, list[dict]], mode: str, name: str, r: int, figures: dict) -> None:
    figures = {"run": r, "loadavg_1min": report.loadavg()[0], **figures}
    runs.setdefault(name, []).append(figures)
    shown = ", ".join(f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in figures.items() if not isinstance(v, dict))
    log.info("%s server(s) %s: %s", mode, name, shown)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        sys.exit(main())
    except BenchError as exc:
        log.error("bench failed: %s", exc)
        sys.exit(1)
