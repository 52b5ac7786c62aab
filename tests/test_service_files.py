"""The service files under contrib/: the systemd unit passes
`systemd-analyze verify` and its stop signal lets the driver exit cleanly with
every event moved exactly once; the logrotate snippet parses, and a real
rotation (copytruncate) under a running driver loses no later log line.

These tools are part of the test machine (apt-get install systemd logrotate):
a missing tool fails the test, it is not skipped."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess

import pytest

from helpers import DRIVER, REPO, Driver, assert_exactly_once, produce, setup_source, wait_for

UNIT = REPO / "contrib" / "systemd" / "qsplit@.service"
LOGROTATE = REPO / "contrib" / "logrotate" / "qsplit"


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {'systemd' if name.startswith('systemd') else name}")
    return path


def unit_service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def unit_stop_signal() -> signal.Signals:
    return signal.Signals[unit_service()["KillSignal"]]


def unit_success_codes() -> set[int]:
    return {0} | {int(w) for w in unit_service().get("SuccessExitStatus", "").split() if w.isdigit()}


# -- systemd -------------------------------------------------------------------

def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify on an instance of the template, with ExecStart
    pointing at this test run's qsplit-driver (verify checks it exists)."""
    driver = DRIVER[0] if len(DRIVER) == 1 else pytest.fail("qsplit-driver console script not installed")
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/qsplit-driver " in text
    instance = tmp_path / "qsplit@demo.service"
    instance.write_text(text.replace("ExecStart=/usr/local/bin/qsplit-driver ", f"ExecStart={driver} "))
    result = subprocess.run([tool("systemd-analyze"), "verify", str(instance)], capture_output=True, text=True)
    # any complaint (unknown key, bad value: "ignoring") is a failure, not only a non-zero exit
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_systemd_unit_runs_in_foreground_and_stops_with_sigint():
    service = unit_service()
    assert service["Type"] in ("exec", "simple")
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/qsplit-driver") and exec_start[-1] == "/etc/qsplit/%i.ini"
    assert not {"-d", "--daemon"} & set(exec_start), "systemd supervises a foreground process"
    assert service["KillSignal"] == "SIGINT" and service["Restart"] == "on-failure"
    assert 30 <= int(service["TimeoutStopSec"]) <= 600
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


def stop(driver: Driver, sig: signal.Signals, cluster) -> tuple[int, str]:
    """What the unit's stop does: *sig*, then the exit status and output."""
    try:
        code = driver.stop(sig, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the driver did not exit within 60 s of {sig.name}: {driver.stdout()}{driver.stderr()}\n"
                             f"{cluster.log_text()}") from None
    return code, driver.stdout() + driver.stderr()


def test_unit_stop_signal_exits_cleanly_and_keeps_every_event(cluster):
    """What `systemctl stop` does (KillSignal) while batches flow: the exit
    status is one the unit counts as success (no restart, no failed state),
    and after a restart every event is on the target exactly once."""
    queues = ["a", "b"]
    ini = setup_source(cluster, cluster.write_ini(loop_delay="0.1"), queues)  # registers the consumer

    # the driver as the unit runs it: foreground, looping, the ini its only argument
    driver = Driver(cluster, str(ini))
    try:
        produce(cluster, queues, per_batch=500, batches=4)
        wait_for(lambda: cluster.log_text().count(" applied: ") >= 1, 60, "a first batch")
        code, out = stop(driver, unit_stop_signal(), cluster)
    finally:
        driver.kill()
    assert code in unit_success_codes(), f"exit status {code} after {unit_stop_signal().name}: {out}{cluster.log_text()}"
    assert "Traceback" not in out + cluster.log_text()

    rest = cluster.run_driver("--once", str(ini))  # the next start
    assert rest.returncode == 0, rest.stderr + cluster.log_text()
    assert sum(cluster.target_queue_counts().values()) == 2000
    assert_exactly_once(cluster, queues)


# -- logrotate -----------------------------------------------------------------

def test_logrotate_snippet_parses():
    result = subprocess.run([tool("logrotate"), "-d", "-s", os.devnull, str(LOGROTATE)], capture_output=True, text=True)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "error" not in out.lower(), out
    assert "copytruncate" in LOGROTATE.read_text()


def test_copytruncate_rotation_under_a_running_driver(cluster, tmp_path):
    """logrotate -f with the shipped snippet (its path pointed at this test's
    log directory): the rotated file keeps the lines before, the driver's
    next lines start the truncated file at offset 0 (append mode: no hole of
    NUL bytes, no lost line), without a signal or a restart."""
    queues = ["a"]
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    cluster.dst_exec("select pgq.create_queue('a')")
    ini = cluster.write_ini(loop_delay="0.1", log_size="0")  # as docs/deployment.md says for logrotate
    log_dir = cluster.workdir / "log"
    log = log_dir / "test_splitter.log"
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    log.unlink()

    snippet = LOGROTATE.read_text()
    assert "/var/log/qsplit/*.log {" in snippet
    conf = tmp_path / "logrotate.conf"
    conf.write_text(snippet.replace("/var/log/qsplit/*.log {", f"{log_dir}/*.log {{"))
    os.chmod(log_dir, 0o755)  # logrotate refuses group/world-writable log directories

    # the driver as the unit runs it: foreground, looping, the ini its only argument
    driver = Driver(cluster, str(ini))
    try:
        produce(cluster, queues, per_batch=10, batches=1)
        wait_for(lambda: log.exists() and " applied: {count: 10," in log.read_text(), 60, "the first batch's log line")
        before = log.read_text()

        rotated = subprocess.run([tool("logrotate"), "-f", "-s", str(tmp_path / "state"), str(conf)],
                                 capture_output=True, text=True)
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        assert (log_dir / "test_splitter.log.1").read_text().startswith(before)  # delaycompress: plain text
        assert log.stat().st_size < len(before)

        produce(cluster, queues, per_batch=20, batches=1, start=10)
        wait_for(lambda: " applied: {count: 20," in log.read_text(), 60,
                 "the second batch's log line after rotation")
        after = log.read_bytes()
        assert b"\0" not in after, "the driver kept writing at its old offset (not append mode)"
        assert re.match(rb"\d{4}-\d\d-\d\d ", after), after[:80]
        assert b"count: 10," not in after
        code, out = stop(driver, unit_stop_signal(), cluster)
    finally:
        driver.kill()
    assert code in unit_success_codes(), out
    assert_exactly_once(cluster, queues)
