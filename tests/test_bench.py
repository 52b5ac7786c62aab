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

SCENARIOS = ("limit", "standard", "small_batches", "big_batch", "per_event", "latency")


def test_bench_quick_runs_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--quick",
         "--server", f"host={PG_HOST} port={PG_PORT} user={PG_USER}",
         "--src-db", f"{PREFIX}_bench_src", "--dst-db", f"{PREFIX}_bench_dst", "--json", str(out)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| limit L: psql COPY pipe into one event table |" in done.stdout
    doc = json.loads(out.read_text())
    for name in SCENARIOS:
        assert len(doc["runs"][name]) == 1, name
    for name in ("limit", "standard", "small_batches", "big_batch", "per_event"):
        run = doc["runs"][name][0]
        assert run["events"] > 0 and run["events_per_s"] > 0, (name, run)
    assert doc["runs"]["standard"][0]["events"] == doc["sizes"]["standard"]
    assert doc["runs"]["big_batch"][0]["events"] == doc["sizes"]["big"]
    assert 5 < doc["runs"]["big_batch"][0]["peak_rss_mib"] < 1024
    latency = doc["runs"]["latency"][0]
    assert latency["events"] > 0 and 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert {t["target"] for t in doc["summary"]["targets"]} >= {"standard throughput", "small-batch throughput"}
    # the bench drops the databases it made
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from pg_database where datname in (%s, %s)",
                        (f"{PREFIX}_bench_src", f"{PREFIX}_bench_dst"))
            assert cur.fetchone() == (0,)
    finally:
        conn.close()
