"""The original queue_splitter's surface, through the real CLI: its config
keys and syntax (table_filter, section choice, interpolation names,
config_format = 2, exception_sleep, keepalive_stats, logfmt_*), its stats
log lines matched with the regular expressions monitoring uses for them,
its exit statuses, and relative paths that stay put under -d."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers import Cluster, Driver, kill_quietly, process_alive, wait_for, wait_for_lock_wait

from qsplit.config import ConfigError, load, parse_overrides

# also run on every other supported PostgreSQL major (make test-matrix)
pytestmark = pytest.mark.matrix

# what monitoring written for the original matches (issue 12, section 3)
COUNT_RULE = re.compile(r"INFO \{count: (\d+), duration:")
STATS_RULE = re.compile(r"\{count: (\d+), duration: (\d+(?:\.\d+)?)(, idle: (\d+(?:\.\d+)?))?\}$")
HEARTBEAT_RULE = re.compile(r"INFO \{idle: (\d+(?:\.\d+)?)\}$")
# the original's default line layout: %(asctime)s %(process)s %(levelname)s %(message)s
ORIGINAL_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\d+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$")


def _queues(cluster: Cluster, *names: str) -> None:
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    for q in names:
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))


def _events(cluster: Cluster, extra1: str, n: int, tag: str = "") -> None:
    cluster.src_exec(
        "select pgq.insert_event('singlequeue', 'ev', %s || i::text, %s, null, null, null)"
        "  from generate_series(1, %s) i",
        (f"{extra1}{tag}:", extra1, n),
    )


def _ok(result: subprocess.CompletedProcess, cluster: Cluster | None = None) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr + (cluster.log_text() if cluster else "")
    return result


def write(tmp_path: Path, text: str, name: str = "job.ini") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = "src_db = dbname=x\ndst_db = dbname=y\npgq_queue_name = q\n"


# --- config keys and syntax ---------------------------------------------------


@pytest.mark.parametrize("read_ahead", ["0", "1"])
def test_table_filter_moves_only_the_listed_tables(cluster, read_ahead):
    """table_filter = t1, s2.t2 forwards only events whose ev_extra1 is
    public.t1 or s2.t2 (the original qualifies bare names with public.); the
    others are consumed and dropped, as the original does.  In both loops:
    read_ahead = 1 streams batches by its own path."""
    queues = ("public.t1", "s2.t2", "public.t2", "public.t3")
    _queues(cluster, *queues)
    ini = cluster.write_ini(table_filter="t1, s2.t2", read_ahead=read_ahead)
    _ok(cluster.run_driver("--once", str(ini)), cluster)
    for q, n in (("public.t1", 3), ("public.t3", 4), ("s2.t2", 2), ("public.t2", 1)):
        _events(cluster, q, n)
    cluster.tick()
    _ok(cluster.run_driver("--once", str(ini)), cluster)
    for q, n in (("public.t1", 2), ("public.t3", 5)):
        _events(cluster, q, n, tag="b")
    cluster.tick()
    _ok(cluster.run_driver("--once", str(ini)), cluster)

    assert cluster.target_queue_counts() == {"public.t1": 5, "s2.t2": 2, "public.t2": 0, "public.t3": 0}
    assert [r[1] for r in cluster.target_events("public.t1")] == ["ev"] * 5
    assert [r[2] for r in cluster.target_events("public.t1")] == [
        "public.t1:1", "public.t1:2", "public.t1:3", "public.t1b:1", "public.t1b:2"]
    # the dropped events are consumed: nothing is pending for the consumer
    (pending,) = cluster.src_exec(
        "select pending_events from pgq.get_consumer_info('singlequeue', 'test_splitter')")[0]
    assert pending == 0
    assert "unknown key" not in cluster.log_text()
    stats = [int(m.group(1)) for m in map(COUNT_RULE.search, cluster.log_text().splitlines()) if m]
    assert sorted(stats, reverse=True)[:2] == [5, 2], stats  # forwarded events only, as the original counts


@pytest.mark.parametrize("read_ahead", ["0", "1"])
def test_table_filter_changed_by_reload_applies_from_the_next_batch(cluster, read_ahead):
    """A reload (-r) while a batch is being applied: that batch moves under
    the old table_filter, every later one under the new.  In both loops
    (read_ahead = 1 applied the batch it had read ahead meanwhile under the
    old table_filter too)."""
    _queues(cluster, "public.a", "public.b")
    ini = cluster.write_ini(loop_delay="0.05", read_ahead=read_ahead)
    _ok(cluster.run_driver("--once", str(ini)), cluster)
    for tag in ("1", "2"):
        _events(cluster, "public.a", 2, tag=tag)
        _events(cluster, "public.b", 3, tag=tag)
        cluster.tick()
    # batch 1's apply waits on the target queues' event tables
    lock = cluster.lock_event_tables(("public.a", "public.b"))
    driver = Driver(cluster, str(ini))
    try:
        wait_for_lock_wait(cluster)
        time.sleep(0.5)  # read_ahead = 1: batch 2 is read meanwhile
        ini.write_text(ini.read_text() + "table_filter = a\n")
        _ok(cluster.run_driver("-r", str(ini), timeout=30))
        time.sleep(0.3)  # the signal is in before batch 1 ends
        lock.rollback()
        wait_for(lambda: "reloaded" in cluster.log_text() and
                 cluster.src_exec("select pending_events from pgq.get_consumer_info('singlequeue', 'test_splitter')")
                 == [(0,)], what="both batches to move")
        assert driver.alive(), driver.stderr()
    finally:
        driver.stop()
    # batch 1: everything; batch 2: public.a only
    assert [r[2] for r in cluster.target_events("public.b")] == ["public.b1:1", "public.b1:2", "public.b1:3"]
    assert cluster.target_queue_counts() == {"public.a": 4, "public.b": 3}


def test_section_choice_follows_the_running_original(tmp_path):
    both = write(tmp_path, "[queue_splitter]\n" + BASE + "pgq_consumer_id = old2x\n"
                 "[queue_splitter3]\n" + BASE + "pgq_consumer_id = new3x\n")
    cfg = load(both)
    assert cfg.section == "queue_splitter3" and cfg.consumer_name == "new3x"
    assert cfg.other_sections == {"queue_splitter": "old2x"}
    three = write(tmp_path, both.read_text() + "[qsplit]\n" + BASE + "pgq_consumer_id = mine\n", "three.ini")
    assert load(three).section == "qsplit" and load(three).consumer_name == "mine"
    assert load(write(tmp_path, "[queue_splitter]\n" + BASE, "old.ini")).section == "queue_splitter"


def test_section_and_consumer_are_logged(cluster):
    _queues(cluster, "a")
    ini = cluster.write_ini(section="queue_splitter3", pgq_consumer_id="c3")
    ini.write_text(ini.read_text() + "[queue_splitter]\npgq_consumer_id = c2\n")
    _ok(cluster.run_driver("--once", str(ini)), cluster)
    log = cluster.log_text()
    assert f"config {ini}: section [queue_splitter3], consumer 'c3'" in log, log
    assert "[queue_splitter] (consumer 'c2') is not used" in log, log


def test_interpolation_names_of_the_original(tmp_path):
    cfg = load(write(tmp_path, "[queue_splitter3]\n" + BASE +
                     "pgq_consumer_id = %(service_name)s_%(job_name)s\n"
                     "logfile = %(config_dir)s/log/%(host_name)s.log\n", "nightly.ini"))
    assert cfg.consumer_name == "queue_splitter3_nightly"
    assert cfg.logfile == tmp_path / "log" / f"{socket.gethostname()}.log"


def test_config_format_2_substitutes_dollar_names(tmp_path):
    cfg = load(write(tmp_path, "[queue_splitter]\nconfig_format = 2\nbase = /var/qs\n"
                     "src_db = dbname=x\ndst_db = dbname=y password=a%b\npgq_queue_name = q\n"
                     "pgq_consumer_id = ${job_name}_c\nlogfile = ${base}/${service_name}.log\n"
                     "logfmt_file = %(asctime)s %(message)s\n"))
    assert cfg.consumer_name == "job_c"
    assert cfg.logfile == Path("/var/qs/queue_splitter.log")
    assert cfg.dst_db == "dbname=y password=a%b"
    assert cfg.logfmt_file == "%(asctime)s %(message)s"
    with pytest.raises(ConfigError, match="config_format = '3'"):
        load(write(tmp_path, "[queue_splitter]\nconfig_format = 3\n" + BASE, "bad.ini"))


def test_original_only_keys_are_accepted(tmp_path):
    cfg = load(write(tmp_path, "[queue_splitter]\n" + BASE +
                     "pgq_lazy_fetch = 500\npgq_autocommit = 1\nexception_sleep = 5\nkeepalive_stats = 60\n"
                     "table_filter = a, b.c\nlogfmt_console = %%(levelname)s %%(message)s\n"
                     "logdatefmt_file = %%H:%%M\nlogfmt_file_verbose = %%(message)s\n"))
    assert cfg.warnings == ()
    assert cfg.table_filter == ("public.a", "b.c")
    assert cfg.exception_sleep == 5 and cfg.keepalive_stats == 60
    assert cfg.logfmt_console == "%(levelname)s %(message)s" and cfg.logdatefmt_file == "%H:%M"
    with pytest.raises(ConfigError, match=r"logfmt_file = .*not a logging format"):
        load(write(tmp_path, "[queue_splitter]\n" + BASE + "logfmt_file = %%(nope\n", "bad.ini"))


def test_exception_sleep_is_a_fixed_retry_delay(cluster):
    _queues(cluster)
    ini = cluster.write_ini(dst_db="host=127.0.0.1 port=1 dbname=nowhere connect_timeout=1",
                            exception_sleep="0.2", loop_delay="0.05")
    driver = Driver(cluster, "-v", str(ini))
    try:
        wait_for(lambda: "(attempt 5)" in cluster.log_text(), timeout=30, what="five attempts")
    finally:
        driver.signal()
        assert driver.wait(timeout=15) == 0
    log = cluster.log_text()
    assert "retrying in 0.2 s" in log and "retrying in 0.4 s" not in log and "retrying in 1 s" not in log, log


# --- the stats lines ------------------------------------------------------------


def test_stats_lines_match_the_originals_monitoring_rules(cluster):
    _queues(cluster, "a", "b")
    ini = cluster.write_ini(loop_delay="0.05", keepalive_stats="1")
    _ok(cluster.run_driver("--once", str(ini)), cluster)
    driver = Driver(cluster, str(ini))
    try:
        wait_for(lambda: any(HEARTBEAT_RULE.search(line) for line in cluster.log_text().splitlines()),
                 what="an idle heartbeat {idle: N}")
        _events(cluster, "a", 3)
        _events(cluster, "b", 2)
        cluster.tick()
        wait_for(lambda: any(STATS_RULE.search(line) and "count: 5," in line
                             for line in cluster.log_text().splitlines()), what="the batch's stats line")
    finally:
        driver.signal()
        assert driver.wait(timeout=15) == 0
    lines = cluster.log_text().splitlines()
    for line in lines:
        assert ORIGINAL_LINE.match(line), line
    batch = [line for line in lines if STATS_RULE.search(line)]
    # one line per batch (the richer line does not match: nothing counted twice)
    assert [int(COUNT_RULE.search(line).group(1)) for line in batch] == [s for s in
                                                                          (int(STATS_RULE.search(x).group(1)) for x in batch)]
    with_events = [line for line in batch if " {count: 5, " in line]
    assert len(with_events) == 1
    m = ORIGINAL_LINE.match(with_events[0])
    assert m.group(2) == "INFO" and int(m.group(1)) == driver.pid
    assert re.fullmatch(r"\{count: 5, duration: \d+\.\d{1,4}, idle: \d+\.\d{1,4}\}", m.group(3)), m.group(3)
    rich = [line for line in lines if " applied: " in line]
    assert rich and all(not STATS_RULE.search(line) and not COUNT_RULE.search(line) for line in rich)
    assert any('queues: {"a": 3, "b": 2}' in line for line in rich)
    heartbeat = next(line for line in lines if HEARTBEAT_RULE.search(line))
    assert float(HEARTBEAT_RULE.search(heartbeat).group(1)) >= 1.0


def test_logfmt_keys_shape_file_and_console_lines(cluster):
    _queues(cluster, "a")
    ini = cluster.write_ini(logfmt_file="F %%(levelname)s %%(message)s",
                            logfmt_console="C %%(levelname)s %%(message)s",
                            logfmt_file_verbose="FV %%(asctime)s %%(levelname)s %%(message)s",
                            logdatefmt_file_verbose="%%H:%%M")
    result = _ok(cluster.run_driver("--once", str(ini)), cluster)
    assert all(line.startswith("F ") for line in cluster.log_text().splitlines()), cluster.log_text()
    # a foreground run with logfile also writes to stderr, as the original
    assert any(line.startswith("C INFO ") for line in result.stderr.splitlines()), result.stderr
    verbose = _ok(cluster.run_driver("-v", "--once", "--set", "logfile=%(job_name)s-v.log", str(ini)))
    text = (cluster.workdir / "test_splitter-v.log").read_text()
    assert all(re.match(r"FV \d\d:\d\d (INFO|DEBUG) ", line) for line in text.splitlines()), text
    assert re.search(r"^FV \d\d:\d\d DEBUG ", text, re.MULTILINE), text
    assert "C DEBUG " in verbose.stderr
    # -q: warnings and errors only, on both
    quiet = _ok(cluster.run_driver("-q", "--once", str(ini)))
    assert quiet.stderr == ""


def test_default_log_line_is_the_originals(cluster):
    _queues(cluster, "a")
    ini = cluster.write_ini()
    result = _ok(cluster.run_driver("--once", str(ini)), cluster)
    for text in (cluster.log_text(), result.stderr):
        lines = text.splitlines()
        assert lines and all(ORIGINAL_LINE.match(line) for line in lines), text


# --- exit statuses and switches ---------------------------------------------------


def test_control_switches_with_nothing_running_warn_and_exit_0(cluster):
    ini = cluster.write_ini()
    for switch in ("-s", "-k", "-r"):
        result = cluster.run_driver(switch, str(ini))
        assert result.returncode == 0, (switch, result.stderr)
        assert "WARNING" in result.stderr and "not running" in result.stderr, result.stderr
    no_pidfile = cluster.write_ini(name="nopid.ini", pidfile=None)
    result = cluster.run_driver("-s", str(no_pidfile))
    assert result.returncode == 0 and "WARNING" in result.stderr and "pidfile" in result.stderr
    stale = cluster.workdir / "pid" / "test_splitter.pid"
    stale.parent.mkdir(exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale.write_text(f"{dead.pid}\n")
    result = cluster.run_driver("-s", str(ini))
    assert result.returncode == 0 and "not running" in result.stderr, result.stderr


def test_second_instance_exits_1(cluster):
    _queues(cluster, "a")
    ini = cluster.write_ini()
    pidfile = cluster.workdir / "pid" / "test_splitter.pid"
    # a running driver (its lock on the pidfile, not the pid in it, says so)
    live = Driver(cluster, str(ini))
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() == str(live.pid), what="the pidfile")
        for args in (("--once",), ("-d",), ()):
            result = cluster.run_driver(*args, str(ini))
            assert result.returncode == 1, (args, result.stderr)
            assert "already running" in result.stderr
    finally:
        live.signal(signal.SIGTERM)
        live.wait()


def test_rewind_without_target_position_warns_and_exits_0(cluster):
    _queues(cluster, "a")
    ini = cluster.write_ini()
    _ok(cluster.run_driver("--register", str(ini)))
    result = cluster.run_driver("--rewind", str(ini))
    assert result.returncode == 0, result.stderr
    assert "WARNING" in result.stderr and "no position on the target" in result.stderr
    assert "Traceback" not in result.stderr


def test_ini_applies_set(cluster):
    result = _ok(cluster.run_driver("--ini", "--set", "loop_delay=0.5", "--set", "queue_field=extra3",
                                    "--set", "src_db=dbname=mine"))
    text = result.stdout
    assert re.search(r"^loop_delay = 0\.5$", text, re.MULTILINE)
    assert re.search(r"^queue_field = extra3$", text, re.MULTILINE)
    assert re.search(r"^src_db = dbname=mine$", text, re.MULTILINE)
    assert not re.search(r"^#loop_delay = ", text, re.MULTILINE)
    bad = cluster.run_driver("--ini", "--set", "loop_delay")
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr


def test_relative_paths_resolve_once_even_under_daemon_reload(cluster):
    """logfile = log/x.log is relative to the directory the driver started
    in; -d changes to /, and a reload (-r) must not move the log there."""
    _queues(cluster, "a")
    job = f"reltest_{os.getpid()}_{cluster.workdir.name}"
    ini = cluster.write_ini(job_name=job, logfile="log/%(job_name)s.log", pidfile="pid/%(job_name)s.pid",
                            loop_delay="0.05")
    log = cluster.workdir / "log" / f"{job}.log"
    pidfile = cluster.workdir / "pid" / f"{job}.pid"
    stray_log, stray_pid = Path("/log") / f"{job}.log", Path("/pid") / f"{job}.pid"
    _ok(cluster.run_driver("-d", str(ini)))
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the pidfile"))
    try:
        _ok(cluster.run_driver("-r", str(ini)))
        wait_for(lambda: stray_log.exists() or (log.exists() and "config reloaded" in log.read_text()),
                 what="the reload line")
        _events(cluster, "a", 2)
        cluster.tick()
        wait_for(lambda: len(cluster.target_events("a")) == 2, what="the batch after the reload")
        _ok(cluster.run_driver("-s", str(ini)))
        wait_for(lambda: not process_alive(pid), what="the daemon to stop")
        assert not stray_log.exists() and not stray_pid.exists()
        text = log.read_text()
        assert "config reloaded" in text and "count: 2," in text
    finally:
        kill_quietly(pid)
        for stray in (stray_log, stray_pid):
            stray.unlink(missing_ok=True)


def test_parse_overrides_rejects_a_bare_key():
    with pytest.raises(ConfigError):
        parse_overrides(["loop_delay"])
