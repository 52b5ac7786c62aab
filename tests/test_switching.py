"""Switching between Skytools' queue_splitter and qsplit, both ways, any
number of times, with the same ini file and no manual step (issue 12,
section 1).

The original is the real library it runs on: python-pgq's SerialConsumer
(skytools' DBScript), driven by tests/original_splitter.py, a test-only
consumer that routes as queue_splitter does; the target has pgq_ext's
completed_tick table and get_last_tick/set_last_tick (tests/sql/pgq_ext.sql).
Each tool is stopped by SIGINT, SIGKILL between batches, or SIGKILL right
after its target commit; at the end every target queue holds exactly the
source's events routed to it, in order.  Also: the QS001 hint names only a
repair that neither loses nor doubles events, and that repair works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import DRIVER, REPO, Cluster, assert_exactly_once, drained, driver_env, produce, wait_for

# the switch between the tools on every supported major, and across majors
pytestmark = [pytest.mark.matrix, pytest.mark.mixed]

ORIGINAL = [sys.executable, str(REPO / "tests" / "original_splitter.py")]
QUEUES = ("queue.a", "queue.b", "queue.c")
CONSUMER = "switch_splitter"


@pytest.fixture
def switching(cluster: Cluster) -> Cluster:
    """Source queue, target queues, pgq_ext on the target, the consumer
    registered by the original (--register, which also resets pgq_ext)."""
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    for q in QUEUES:
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))
    cluster.dst_exec((REPO / "tests" / "sql" / "pgq_ext.sql").read_text())
    ini = _ini(cluster)
    reg = _original(cluster, "--register", str(ini))
    assert reg.wait(timeout=60) == 0, _log(cluster)
    return cluster


def _ini(cluster: Cluster) -> Path:
    """The one ini file both tools read, unchanged, in every step: the
    Skytools 3.1+ layout (section [queue_splitter3])."""
    path = cluster.workdir / "splitter.ini"
    if not path.exists():
        # the original crashes on a missing log directory (qsplit makes it)
        for folder in ("log", "pid"):
            (cluster.workdir / folder).mkdir(exist_ok=True)
        path.write_text(
            "[queue_splitter3]\n"
            f"job_name = {CONSUMER}\n"
            f"src_db = {cluster.src_dsn}\n"
            f"dst_db = {cluster.dst_dsn}\n"
            "pgq_queue_name = singlequeue\n"
            "loop_delay = 0.05\n"
            "logfile = %(config_dir)s/log/%(job_name)s.log\n"
            "pidfile = %(config_dir)s/pid/%(job_name)s.pid\n"
        )
    return path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The toolkit's driver environment, without the original's failpoint either."""
    return driver_env(extra, base={k: v for k, v in os.environ.items() if k != "ORIGINAL_FAILPOINT"})


def _original(cluster: Cluster, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(ORIGINAL + list(args), cwd=cluster.workdir, env=_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _qsplit(cluster: Cluster, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(DRIVER + list(args), cwd=cluster.workdir, env=_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _log(cluster: Cluster) -> str:
    path = cluster.workdir / "log" / f"{CONSUMER}.log"
    return path.read_text() if path.exists() else ""


def _produce(cluster: Cluster, batches: int, per_batch: int = 6) -> None:
    """*batches* ticks' worth of events, round robin over QUEUES, numbered
    on from the events the source queue has."""
    produce(cluster, QUEUES, per_batch, batches, start=len(cluster.source_events()))


def _drained(cluster: Cluster) -> bool:
    """The consumer has finished every tick of the source queue."""
    return drained(cluster, CONSUMER, "singlequeue")


def _assert_exact(cluster: Cluster) -> None:
    assert assert_exactly_once(cluster, QUEUES) == len(cluster.source_events()) > 0, _log(cluster)


def _run_phase(cluster: Cluster, tool: str, stop: str) -> None:
    """Produce three batches, run *tool* until they are applied (or it
    crashes after its second target commit), then stop it by *stop*."""
    _produce(cluster, 3)
    ini = str(_ini(cluster))
    start = _original if tool == "original" else _qsplit
    if stop == "kill_after_commit":
        env = ({"ORIGINAL_FAILPOINT": "after_target_commit@2"} if tool == "original"
               else {"QSPLIT_FAILPOINT": "after_target_commit@2"})
        proc = start(cluster, ini, env=env)
        assert proc.wait(timeout=60) == -signal.SIGKILL, f"{tool} did not crash where asked\n{_log(cluster)}"
        assert not _drained(cluster)  # its second batch is applied on the target, open on the source
        return
    proc = start(cluster, ini)
    try:
        wait_for(lambda: _drained(cluster) or proc.poll() is not None, timeout=60, what=f"{tool} to drain the queue")
        assert proc.poll() is None, f"{tool} exited with {proc.returncode}\n{_log(cluster)}"
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if stop == "sigint":
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, f"{tool} after SIGINT\n{_log(cluster)}"
    else:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("stop", ["sigint", "kill_between_batches", "kill_after_commit"])
def test_original_qsplit_original_qsplit_exactly_once(switching, stop):
    c = switching
    ini = _ini(c)
    text = ini.read_bytes()
    for tool in ("original", "qsplit", "original", "qsplit"):
        _run_phase(c, tool, stop)
    # the last tool's leftovers (a crash after its commit): one more run of each
    _produce(c, 1)
    for tool, start in (("original", _original), ("qsplit", _qsplit)):
        proc = start(c, str(ini))
        try:
            wait_for(lambda: _drained(c) or proc.poll() is not None, timeout=60, what=f"{tool} to drain")
            assert proc.poll() is None, f"{tool} exited with {proc.returncode}\n{_log(c)}"
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        _produce(c, 1)
    proc = _qsplit(c, "--once", str(ini))
    assert proc.wait(timeout=60) == 0, _log(c)
    assert ini.read_bytes() == text  # the same file in every step
    _assert_exact(c)
    log = _log(c)
    assert "Lost position" not in log and "QS001" not in log, log
    # pgq_ext is kept in step: the original would start where qsplit stopped
    (ext,) = c.dst_exec("select last_tick_id from pgq_ext.completed_tick where consumer_id = %s", (CONSUMER,))
    (mine,) = c.dst_exec("select last_tick_id from qsplit.consumer where consumer_name = %s", (CONSUMER,))
    assert ext == mine


def _once(cluster: Cluster, *args: str) -> int:
    proc = _qsplit(cluster, *args, str(_ini(cluster)))
    return proc.wait(timeout=60)


def _source_tick(cluster: Cluster) -> int:
    (row,) = cluster.src_exec("select last_tick from pgq.get_consumer_info('singlequeue', %s)", (CONSUMER,))
    return row[0]


@pytest.mark.parametrize("case", ["source_ahead", "source_behind"])
def test_qs001_hint_names_the_one_safe_repair_and_it_is_exact(switching, case):
    """The target's position (qsplit's and pgq_ext's, kept in step) and the
    source consumer disagree.  The hint says --rewind to the target's tick,
    back or forward, never --reset; doing what it says moves every event
    exactly once."""
    c = switching
    _produce(c, 2)
    assert _once(c, "--once") == 0
    applied = _source_tick(c)
    if case == "source_ahead":
        # the source consumer moves on without the target (a batch consumed
        # by hand): ticks after `applied` never reached the target
        _produce(c, 1)
        c.src_exec("select pgq.finish_batch(b) from pgq.next_batch('singlequeue', %s) b where b is not null",
                   (CONSUMER,))
        direction = f"back to tick {applied}"
    else:
        # the source consumer is put back to an older tick (e.g. a wrong
        # rewind): the batches after it are on the target already
        (first,) = c.src_exec("select min(tick_id) from pgq.tick t join pgq.queue q on q.queue_id = t.tick_queue"
                              " where q.queue_name = 'singlequeue'")[0]
        c.src_exec("select pgq.register_consumer_at('singlequeue', %s, %s)", (CONSUMER, first))
        direction = f"forward to tick {applied}"
    _produce(c, 1)
    assert _once(c, "--once") == 1
    error = next(line for line in _log(c).splitlines() if "QS001" in line)
    assert direction in error and f"pgq.register_consumer_at(<queue>, '{CONSUMER}', {applied})" in error, error
    assert "qsplit.reset_position" not in error and "--reset would" in error, error
    # do what the hint says
    assert _once(c, "--rewind") == 0
    assert _once(c, "--once") == 0
    _assert_exact(c)  # ahead: the batch consumed by hand came again; behind: nothing twice
    assert _drained(c)


def test_originals_rewind_after_qsplit_doubles_nothing(switching):
    """The issue's trap: after qsplit ran, the original's own --rewind
    (register_consumer_at the pgq_ext tick) used to put the source consumer
    back to where the original had stopped, and everything qsplit had
    applied came again.  pgq_ext is kept in step now."""
    c = switching
    _produce(c, 1)
    proc = _original(c, str(_ini(c)))
    wait_for(lambda: _drained(c), timeout=60, what="the original to drain")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    _produce(c, 3)
    assert _once(c, "--once") == 0
    rewind = _original(c, "--rewind", str(_ini(c)))
    assert rewind.wait(timeout=60) == 0
    _produce(c, 1)
    proc = _original(c, str(_ini(c)))
    try:
        wait_for(lambda: _drained(c) or proc.poll() is not None, timeout=60, what="the original to drain")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    _assert_exact(c)


def _doc_steps() -> list[list[str]]:
    """The commands of docs/operations.md's "Switching back" section, in
    order, as argument lists."""
    doc = (REPO / "docs" / "operations.md").read_text()
    section = doc[doc.index("## Switching back, and forth again"):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    steps = []
    for block in section.split("```sh\n")[1:]:
        for line in block[:block.index("```")].splitlines():
            steps.append(line.split("#", 1)[0].split())
    return steps


def test_switching_back_as_the_operations_doc_says(switching):
    """Runs the doc's commands as written (queue_splitter.py = the original
    on python-pgq, qsplit-driver = this driver, the ini = the test's), with
    events produced while each tool runs, twice over."""
    c = switching
    ini = str(_ini(c))
    tools = {"qsplit-driver": DRIVER, "queue_splitter.py": ORIGINAL}
    steps = _doc_steps()
    assert [s[0] for s in steps] == ["qsplit-driver", "queue_splitter.py", "queue_splitter.py", "qsplit-driver"]
    pidfile = c.workdir / "pid" / f"{CONSUMER}.pid"
    # qsplit runs first (it took over from the original registered above)
    assert c.run_driver("-d", ini, timeout=60).returncode == 0
    for _ in range(2):
        for step in steps:
            args = [ini if a == "/etc/qsplit/my.ini" else a for a in step[1:]]
            _produce(c, 2)  # while a tool runs, or between the two
            if "-s" in args:
                wait_for(lambda: _drained(c), timeout=60, what="the running tool to drain the queue")
            result = subprocess.run(tools[step[0]] + args, cwd=c.workdir, env=_env(), timeout=60,
                                    capture_output=True, text=True)
            assert result.returncode == 0, (step, result.stderr, _log(c))
            if "-s" in args:  # stopped: wait until its pid file is gone
                wait_for(lambda: not pidfile.exists(), timeout=30, what=f"{step[0]} to stop")
            else:
                wait_for(lambda: pidfile.exists(), timeout=30, what=f"{step[0]} to start")
    _produce(c, 1)
    wait_for(lambda: _drained(c), timeout=60, what="the last tool to drain the queue")
    assert c.run_driver("-s", ini, timeout=60).returncode == 0
    wait_for(lambda: not pidfile.exists(), timeout=30, what="qsplit to stop")
    _assert_exact(c)
    log = _log(c)
    assert "Lost position" not in log and "QS001" not in log
    # both tools wrote the same stats line into the one log file
    stats = re.compile(r"^\S+ \S+ (\d+) INFO \{count: \d+, duration: \d+\.\d+(, idle: \d+\.\d+)?\}$")
    writers = {m.group(1) for m in map(stats.match, log.splitlines()) if m}
    assert len(writers) >= 5, log  # three qsplit runs, two of the original


def test_consumer_name_mismatch_with_pgq_ext_is_a_warning(switching):
    """The original ran as 'switch_splitter' from [queue_splitter3]; a file
    whose [qsplit] section names another consumer starts (a new consumer),
    but says that pgq_ext holds no position for it and names the file's
    other consumer."""
    c = switching
    _produce(c, 1)
    proc = _original(c, str(_ini(c)))
    wait_for(lambda: _drained(c), timeout=60, what="the original to drain")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    ini = _ini(c)
    other = c.workdir / "other.ini"
    other.write_text(ini.read_text() + "[qsplit]\npgq_consumer_id = renamed\n"
                     + "".join(line + "\n" for line in ini.read_text().splitlines()[1:]
                               if not line.startswith("job_name")))
    proc = _qsplit(c, "--once", str(other))
    assert proc.wait(timeout=60) == 0
    log = (c.workdir / "log" / "other.log").read_text()
    assert "section [qsplit], consumer 'renamed'; [queue_splitter3] (consumer 'switch_splitter') is not used" in log
    warning = next(line for line in log.splitlines() if " WARNING " in line and "pgq_ext" in line)
    assert "no position for this consumer" in warning and "'switch_splitter'" in warning, warning
    # the right name: no warning
    proc = _qsplit(c, "--once", str(ini))
    assert proc.wait(timeout=60) == 0
    assert "no position for this consumer" not in _log(c)
