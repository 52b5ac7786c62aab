"""Medians, ratios, targets: the bench's table and its JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def machine(server_version: str, settings: dict[str, str]) -> dict:
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
        "postgresql": server_version,
        "settings": settings,
    }


def loadavg() -> list[float]:
    return list(os.getloadavg())


def summarize(runs: dict[str, list[dict]], loop_delay_ms: float) -> dict:
    """Medians of every measurement, ratios to L and to the per-event
    baseline, and each target with whether it is met."""
    s: dict = {}
    for name, rs in runs.items():
        if not rs:
            continue
        keys = [k for k, v in rs[0].items() if isinstance(v, (int, float))]
        s[name] = {k: median(rs, k) for k in keys}
    lim = s.get("limit", {}).get("events_per_s")
    base = s.get("per_event", {}).get("events_per_s")
    for name in ("standard", "small_batches", "big_batch", "per_event"):
        if name in s:
            eps = s[name]["events_per_s"]
            s[name]["x_limit"] = eps / lim if lim else None
            s[name]["x_per_event"] = eps / base if base else None
    targets = []

    def target(what: str, value, goal: str, met) -> None:
        targets.append({"target": what, "value": value, "goal": goal, "met": met})

    if "standard" in s and lim:
        target("standard throughput", s["standard"]["x_limit"], ">= 0.7 x L", s["standard"]["x_limit"] >= 0.7)
    if "small_batches" in s and lim:
        target("small-batch throughput", s["small_batches"]["x_limit"], ">= 0.3 x L", s["small_batches"]["x_limit"] >= 0.3)
    if "big_batch" in s:
        rss = max(r["peak_rss_mib"] for r in runs["big_batch"])
        s["big_batch"]["peak_rss_mib_max"] = rss
        target("one-big-batch peak RSS (MiB, worst run)", rss, "<= 64", rss <= 64)
    if "latency" in s:
        p99 = s["latency"]["p99_ms"]
        goal = loop_delay_ms + 50
        target("latency p99 after the tick (ms)", p99, f"<= {goal:g}", p99 <= goal)
    s["targets"] = targets
    return s


ROWS = (
    ("limit", "limit L: psql COPY pipe into one event table"),
    ("standard", "qsplit standard: 20 queues, {batch} events/batch"),
    ("small_batches", "qsplit small batches: {small_batch} events/batch"),
    ("big_batch", "qsplit one big batch (qsplit-driver --once)"),
    ("per_event", "per-event baseline: pgq.insert_event loop"),
)


def table(summary: dict, sizes: dict) -> str:
    lines = [
        "| measurement | events | events/s (median) | × L | × per-event |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in ROWS:
        if key not in summary:
            continue
        m = summary[key]
        lines.append(
            f"| {label.format(**sizes)} | {int(m['events']):,} | {m['events_per_s']:,.0f} | "
            f"{_ratio(m.get('x_limit', 1.0 if key == 'limit' else None))} | {_ratio(m.get('x_per_event'), 'x')} |"
        )
    if "big_batch" in summary:
        lines.append(f"| one big batch: driver peak RSS | | {summary['big_batch']['peak_rss_mib_max']:.1f} MiB (worst run) | | |")
    if "latency" in summary:
        m = summary["latency"]
        lines.append(
            f"| latency after the tick, p50 / p99 (loop_delay {m['loop_delay_ms']:.0f} ms, tick every "
            f"{m['tick_every_ms']:.0f} ms, ~{sizes['latency_rate']:.0f} ev/s) | {int(m['events']):,} | "
            f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} ms | | |"
        )
        lines.append(
            f"| latency source commit → visible, p50 / p99 | | "
            f"{m['commit_to_visible_p50_ms']:.1f} / {m['commit_to_visible_p99_ms']:.1f} ms | | |"
        )
    lines.append("")
    lines.append("| target | measured | goal | met |")
    lines.append("|---|---:|---|---|")
    for t in summary["targets"]:
        value = f"{t['value']:.2f}" if isinstance(t["value"], float) else str(t["value"])
        lines.append(f"| {t['target']} | {value} | {t['goal']} | {'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines)


def _ratio(value, suffix: str = "") -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if not suffix else f"{value:,.1f}×"


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def phases_table(runs: dict[str, list[dict]]) -> str:
    """Seconds per step of the driver loop, for the median run (by events/s)
    of each measurement that was timed with --phases."""
    lines = ["| run | step | seconds | per batch (ms) |", "|---|---|---:|---:|"]
    for name, rs in runs.items():
        timed = sorted((r for r in rs if "phases_s" in r), key=lambda r: r["events_per_s"])
        if not timed:
            continue
        mid = timed[len(timed) // 2]
        lines.append(f"| {name} (run {mid['run']}, {mid['seconds']:.2f} s in all) | | | |")
        for step, secs in mid["phases_s"].items():
            lines.append(f"| | {step} | {secs:.3f} | {secs / mid['batches'] * 1000:.2f} |")
    return "\n".join(lines)
