"""make bench's program runs end to end (tiny sizes, no timing asserted):
every measurement moves all its events through the real driver and lands
in the table and the JSON file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg2

from helpers import PG_HOST, PG_PORT, PG_USER, PREFIX, REPO


def test_bench_quick_runs_every_measurement(tmp_path):
    """One server only: the suite has no second cluster (the two-server
    mode takes --target-server or scripts/target-cluster.sh)."""
    out = tmp_path / "bench.json"
    png = tmp_path / "bench.png"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--quick", "--modes", "one",
         "--server", f"host={PG_HOST} port={PG_PORT} user={PG_USER}",
         "--src-db", f"{PREFIX}_bench_src", "--dst-db", f"{PREFIX}_bench_dst", "--json", str(out), "--plot", str(png)],
        capture_output=True, text=True, timeout=180, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| servers | events/batch | events | L ev/s | qsplit ev/s | original ev/s |" in done.stdout
    doc = json.loads(out.read_text())
    runs = doc["runs"]["one"]
    sizes = doc["sizes"]
    expected = ["limit", "per_event", "big_batch", "latency"]
    for bs in sizes["batch_sizes"]:
        expected += [f"qsplit_{bs}", f"qsplit_seq_{bs}", f"original_{bs}"]
    for name in expected:
        assert len(runs[name]) == 1, name
    for name in expected[:3] + expected[4:]:
        run = runs[name][0]
        assert run["events"] > 0 and run["events_per_s"] > 0, (name, run)
    for bs in sizes["batch_sizes"]:
        n = sizes["events"] if bs >= 10_000 else sizes["mid_events"] if bs >= 1000 else sizes["small_events"]
        # the peer row moves the same events through python-pgq, batch by batch
        assert runs[f"qsplit_{bs}"][0]["events"] == runs[f"qsplit_seq_{bs}"][0]["events"] == n
        assert runs[f"original_{bs}"][0]["events"] == n
        assert runs[f"original_{bs}"][0]["batches"] == -(-n // bs)
        # each half of L and of qsplit alone, on the same events
        halves = runs[f"halves_{bs}"][0]
        assert halves["events"] == n and halves["batches"] == -(-n // bs)
        for half in ("limit_out", "limit_in", "qsplit_source", "qsplit_target", "qsplit_target_pipelined"):
            assert halves[f"{half}_seconds"] > 0 and halves[f"{half}_cpu_us_per_event"] >= 0, (half, halves)
    assert "| servers | events/batch | L out (COPY TO) |" in done.stdout
    rows = doc["summary"]["modes"]["one"]["by_batch_size"]
    assert [r["batch_size"] for r in rows] == sizes["batch_sizes"]
    assert all(r["qsplit_x_limit"] > 0 and r["qsplit_x_original"] > 0 for r in rows)
    # the bounds of qsplit / L, worked out against the L of the same round
    assert all(r["bound_parts"] > 0 and r["bound_cpu"] > 0 for r in rows), rows
    # and qsplit's target half pipelined alone (the source half elsewhere)
    assert all(r["target_alone_x_limit"] > 0 for r in rows), rows
    assert runs["big_batch"][0]["events"] == sizes["big"]
    assert 5 < runs["big_batch"][0]["peak_rss_mib"] < 1024
    latency = runs["latency"][0]
    assert latency["events"] > 0 and 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the bench drops the databases it made
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from pg_database where datname in (%s, %s)",
                        (f"{PREFIX}_bench_src", f"{PREFIX}_bench_dst"))
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


def test_bench_profile_moves_every_event_through_both_writers():
    """make bench-profile's program: L's COPY and qsplit's target half each
    write every event once (it checks the target counts itself), and the
    table shows the WAL and CPU of each.  perf and strace are left out here:
    they are optional and slow the run."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "profile.py"), "--events", "3000", "--batch-size", "1000",
         "--no-perf", "--no-strace",
         "--server", f"host={PG_HOST} port={PG_PORT} user={PG_USER}",
         "--src-db", f"{PREFIX}_profile_src", "--dst-db", f"{PREFIX}_profile_dst"],
        capture_output=True, text=True, timeout=180, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| L ", "| qsplit "))]
    assert len(rows) == 2, done.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "3,000", row           # every event arrived, once
        assert float(cells[5]) > 0, row            # WAL bytes per event
    assert "of which apply_batch + commit" in done.stdout
    # the scratch databases are gone
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from pg_database where datname like %s", (f"{PREFIX}_profile_%",))
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
