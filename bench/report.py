"""Medians, ratios, targets: the bench's table and its JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

MODE_LABELS = {"one": "one server", "two": "two servers"}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def server_info(server) -> dict:
    version = server.execute("postgres", "show server_version")[0][0]
    settings = dict(server.execute(
        "postgres",
        "select name, current_setting(name) from pg_settings where name in"
        " ('shared_buffers', 'temp_buffers', 'work_mem', 'synchronous_commit', 'fsync', 'wal_level',"
        "  'max_wal_size', 'checkpoint_timeout', 'port')",
    ))
    return {"postgresql": version, "settings": settings}


def machine(servers: dict[str, dict]) -> dict:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "target_servers": servers,
    }


def loadavg() -> list[float]:
    return list(os.getloadavg())


def _medians(rs: list[dict]) -> dict:
    keys = [k for k, v in rs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: median(rs, k) for k in keys}


def _per_run_ratios(runs: dict[str, list[dict]], name: str, other: str) -> list[float]:
    """name's ev/s over other's, run by run (same round, same load)."""
    a = {r["run"]: r["events_per_s"] for r in runs.get(name, [])}
    b = {r["run"]: r["events_per_s"] for r in runs.get(other, [])}
    return [a[k] / b[k] for k in sorted(a) if k in b]


def summarize(runs: dict[str, dict[str, list[dict]]], batch_sizes, loop_delay_ms: float,
              cores: int | None = None) -> dict:
    """Per mode: medians of every measurement; per batch size qsplit, the
    original and L with the ratios (median of the per-run ratios, each run
    against the L and the original of its own round); the bounds of qsplit
    / L on *cores* cores (default: this machine's); the targets."""
    cores = cores or os.cpu_count() or 1
    s: dict = {"modes": {}, "targets": [], "cores": cores}

    def target(what: str, value, goal: str, met) -> None:
        s["targets"].append({"target": what, "value": value, "goal": goal, "met": met})

    for mode, mruns in runs.items():
        m = {name: _medians(rs) for name, rs in mruns.items() if rs}
        lim = m.get("limit", {}).get("events_per_s")
        rows = []
        for bs in batch_sizes:
            q, o, seq = m.get(f"qsplit_{bs}"), m.get(f"original_{bs}"), m.get(f"qsplit_seq_{bs}")
            x_l = _per_run_ratios(mruns, f"qsplit_{bs}", "limit")
            x_o = _per_run_ratios(mruns, f"qsplit_{bs}", f"original_{bs}")
            seq_x_o = _per_run_ratios(mruns, f"qsplit_seq_{bs}", f"original_{bs}")
            rows.append({
                "batch_size": bs,
                "limit": lim,
                "qsplit": q["events_per_s"] if q else None,
                "qsplit_seq": seq["events_per_s"] if seq else None,
                "qsplit_seq_x_original": statistics.median(seq_x_o) if seq_x_o else None,
                "original": o["events_per_s"] if o else None,
                # CPU microseconds per event (bench + servers), medians
                "cpu_us_per_event": {k: m[n]["cpu_us_per_event"]
                                     for k, n in (("limit", "limit"), ("qsplit", f"qsplit_{bs}"),
                                                  ("qsplit_seq", f"qsplit_seq_{bs}"), ("original", f"original_{bs}"))
                                     if "cpu_us_per_event" in m.get(n, {})},
                "qsplit_x_limit": statistics.median(x_l) if x_l else None,
                "qsplit_x_original": statistics.median(x_o) if x_o else None,
                "qsplit_x_limit_runs": x_l,
                "qsplit_x_original_runs": x_o,
                "halves": m.get(f"halves_{bs}"),
                **_bounds(mruns, bs, cores),
            })
        m["by_batch_size"] = rows
        s["modes"][mode] = m
        label = MODE_LABELS.get(mode, mode)
        for row in rows:
            bs = row["batch_size"]
            if bs == 10_000 and row["qsplit_x_limit"] is not None:
                target(f"{label}, {bs:,}-event batches: qsplit / L", row["qsplit_x_limit"], ">= 0.7",
                       row["qsplit_x_limit"] >= 0.7)
            goal = {10_000: 4.0, 1_000: 3.0}.get(bs)
            if goal is not None and row["qsplit_x_original"] is not None:
                target(f"{label}, {bs:,}-event batches: qsplit / original", row["qsplit_x_original"],
                       f">= {goal:g}", row["qsplit_x_original"] >= goal)
        if "big_batch" in mruns and mruns["big_batch"]:
            rss = max(r["peak_rss_mib"] for r in mruns["big_batch"])
            m["big_batch"]["peak_rss_mib_max"] = rss
            target("one-big-batch peak RSS (MiB, worst run)", rss, "<= 64", rss <= 64)
        if "latency" in m:
            p99 = m["latency"]["p99_ms"]
            goal_ms = loop_delay_ms + 50
            target("latency p99 after the tick (ms)", p99, f"<= {goal_ms:g}", p99 <= goal_ms)
    return s


def _bounds(mruns: dict[str, list[dict]], bs: int, cores: int) -> dict:
    """What qsplit / L cannot pass at batch size *bs*, run by run against
    the L of the same round (medians): a run takes at least
    - its slowest part (the halves: the source half, the COPYs into
      staging, apply_batch + commits; read-ahead overlaps the three):
      "bound_parts";
    - its CPU spread over every core (the qsplit run's own CPU per event):
      "bound_cpu".
    And, not a bound: the target half pipelined as read-ahead runs it, the
    batches from memory (the source half on cores of its own), over L:
    "target_alone_x_limit"."""
    limit = {r["run"]: r["events_per_s"] for r in mruns.get("limit", [])}
    parts, cpu, target_alone = [], [], []
    for h in mruns.get(f"halves_{bs}", []):
        if h["run"] in limit:
            slowest = max(h["qsplit_source_seconds"], h["qsplit_target_staging_seconds"],
                          h["qsplit_target_apply_seconds"])
            parts.append(h["events"] / limit[h["run"]] / slowest)
            if h.get("qsplit_target_pipelined_seconds"):
                target_alone.append(h["events"] / h["qsplit_target_pipelined_seconds"] / limit[h["run"]])
    for q in mruns.get(f"qsplit_{bs}", []):
        if q["run"] in limit and q.get("cpu_us_per_event"):
            cpu.append(cores / (q["cpu_us_per_event"] * 1e-6) / limit[q["run"]])
    return {"bound_parts": statistics.median(parts) if parts else None,
            "bound_cpu": statistics.median(cpu) if cpu else None,
            # not a bound: qsplit's target half pipelined with the source
            # half elsewhere, over the same round's L
            "target_alone_x_limit": statistics.median(target_alone) if target_alone else None}


def _eps(value) -> str:
    return "" if value is None else f"{value:,.0f}"


def _us(value) -> str:
    return "" if value is None else f"{value:.1f}"


def _x(value) -> str:
    return "" if value is None else f"{value:.2f}"


def table(summary: dict, sizes: dict) -> str:
    lines = [
        "| servers | events/batch | events | L ev/s | qsplit ev/s | original ev/s | qsplit / L | qsplit / original "
        "| qsplit read_ahead=0 ev/s | read_ahead=0 / original |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, m in summary["modes"].items():
        for row in m["by_batch_size"]:
            bs = row["batch_size"]
            n = m.get(f"qsplit_{bs}", m.get(f"original_{bs}", {})).get("events")
            lines.append(
                f"| {MODE_LABELS.get(mode, mode)} | {bs:,} | {'' if n is None else f'{int(n):,}'} | "
                f"{_eps(row['limit'])} | {_eps(row['qsplit'])} | {_eps(row['original'])} | "
                f"{_x(row['qsplit_x_limit'])} | {_x(row['qsplit_x_original'])} | "
                f"{_eps(row['qsplit_seq'])} | {_x(row['qsplit_seq_x_original'])} |"
            )
    one = summary["modes"].get("one", {})
    extra = []
    if "per_event" in one:
        extra.append(f"| per-event baseline (pgq.insert_event loop) | {int(one['per_event']['events']):,} events | "
                     f"{one['per_event']['events_per_s']:,.0f} ev/s |")
    if "big_batch" in one:
        b = one["big_batch"]
        extra.append(f"| one big batch (qsplit-driver --once) | {int(b['events']):,} events | "
                     f"{b['events_per_s']:,.0f} ev/s, driver peak RSS {b['peak_rss_mib_max']:.1f} MiB (worst run) |")
    if "latency" in one:
        lt = one["latency"]
        extra.append(
            f"| latency after the tick, p50 / p99 (loop_delay {lt['loop_delay_ms']:.0f} ms, tick every "
            f"{lt['tick_every_ms']:.0f} ms, ~{sizes['latency_rate']:.0f} ev/s) | {int(lt['events']):,} events | "
            f"{lt['p50_ms']:.1f} / {lt['p99_ms']:.1f} ms |")
        extra.append(f"| latency source commit → visible, p50 / p99 | | "
                     f"{lt['commit_to_visible_p50_ms']:.1f} / {lt['commit_to_visible_p99_ms']:.1f} ms |")
    if extra:
        lines += ["", "| one server | size | result |", "|---|---:|---|"] + extra
    cpu_rows = []
    for mode, m in summary["modes"].items():
        for row in m["by_batch_size"]:
            c = row.get("cpu_us_per_event") or {}
            if not c:
                continue
            cpu_rows.append(
                f"| {MODE_LABELS.get(mode, mode)} | {row['batch_size']:,} | {_us(c.get('limit'))} | {_us(c.get('qsplit'))} | "
                f"{_us(c.get('qsplit_seq'))} | {_us(c.get('original'))} | {_x(row.get('bound_cpu'))} |")
    if cpu_rows:
        lines += ["", f"CPU per event (µs, the bench process and its children + the servers' processes): qsplit cannot "
                  f"move more events per second than {summary.get('cores', '?')} cores / its CPU per event, so qsplit / L "
                  "cannot pass that over L's events per second (the last column).",
                  "", "| servers | events/batch | L | qsplit | qsplit read_ahead=0 | original | CPU bound of qsplit / L |",
                  "|---|---:|---:|---:|---:|---:|---:|"] + cpu_rows
    half_rows = []
    for mode, m in summary["modes"].items():
        for row in m["by_batch_size"]:
            h = row.get("halves")
            if not h:
                continue
            cells = " | ".join(f"{h[f'{n}_seconds']:.2f} s, {_us(h[f'{n}_cpu_us_per_event'])}"
                               for n in ("limit_out", "limit_in", "qsplit_source", "qsplit_target"))
            cells += (f" ({h['qsplit_target_staging_seconds']:.2f} s staging + "
                      f"{h['qsplit_target_apply_seconds']:.2f} s apply)")
            half_rows.append(f"| {MODE_LABELS.get(mode, mode)} | {row['batch_size']:,} | {cells} | "
                             f"{_x(row.get('bound_parts'))} | {_x(row.get('target_alone_x_limit'))} |")
    if half_rows:
        lines += ["", "Each half on its own (wall seconds, CPU µs per event): a run takes at least its slowest part, so "
                  "qsplit / L cannot pass L's time / max(qsplit source, its staging, its apply + commits) even with "
                  "every part on a core of its own (read-ahead overlaps those three): the column before last. The last "
                  "column is not a bound but a measurement: qsplit's target half pipelined as read-ahead runs it, "
                  "the batches coming from memory (the source half on cores of its own, as with a source server "
                  "of its own), over the same round's L.",
                  "", "| servers | events/batch | L out (COPY TO) | L in (COPY FROM, one event table) | "
                  "qsplit source (next, COPY out, finish) | qsplit target (COPY to staging, apply_batch, commit) | "
                  "bound of qsplit / L, parts | qsplit / L, source half elsewhere |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"] + half_rows
    lines += ["", "qsplit: read_ahead = 1 (batches overlap; docs/read-ahead.md); read_ahead = 0 is the default loop.",
              "", "| target | measured | goal | met |", "|---|---:|---|---|"]
    for t in summary["targets"]:
        value = f"{t['value']:.2f}" if isinstance(t["value"], float) else str(t["value"])
        lines.append(f"| {t['target']} | {value} | {t['goal']} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines)


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def phases_table(runs: dict[str, dict[str, list[dict]]]) -> str:
    """Seconds per step of the driver loop, for the median run (by events/s)
    of each qsplit measurement that was timed with --phases."""
    lines = ["| servers | run | step | seconds | per batch (ms) |", "|---|---|---|---:|---:|"]
    for mode, mruns in runs.items():
        for name, rs in mruns.items():
            timed = sorted((r for r in rs if "phases_s" in r), key=lambda r: r["events_per_s"])
            if not timed:
                continue
            mid = timed[len(timed) // 2]
            lines.append(f"| {MODE_LABELS.get(mode, mode)} | {name} (run {mid['run']}, {mid['seconds']:.2f} s in all) | | | |")
            for step, secs in mid["phases_s"].items():
                lines.append(f"| | | {step} | {secs:.3f} | {secs / mid['batches'] * 1000:.2f} |")
    return "\n".join(lines)
