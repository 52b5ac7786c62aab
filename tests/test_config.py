"""The config file: load() on its own (the shipped example unchanged,
interpolation, defaults, bad files), then through the real CLI: section
names and 3.x aliases, --set, --ini, --help, unknown keys, use_skylog, bad
values, and the next_batch_custom keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import REPO, Cluster, run_driver

from qsplit.config import KEYS, ConfigError, load


def write(tmp_path: Path, text: str, name: str = "job.ini") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_example_ini_unchanged():
    cfg = load(REPO / "examples" / "queue_splitter.ini")
    assert cfg.job_name == "queue_spliter_sourcedb_sourceq_targetdb"
    assert cfg.src_db == "dbname=sourcedb" and cfg.dst_db == "dbname=targetdb"
    assert cfg.queue_name == "sourceq"
    assert cfg.consumer_name == cfg.job_name  # pgq_consumer_id defaults to job_name
    assert cfg.logfile == Path.home() / "log" / "queue_spliter_sourcedb_sourceq_targetdb.log"
    assert cfg.pidfile == Path.home() / "pid" / "queue_spliter_sourcedb_sourceq_targetdb.pid"
    assert cfg.loop_delay == 1.0 and cfg.queue_field == "extra1"


def test_keys_and_interpolation(tmp_path):
    cfg = load(write(tmp_path, """
[queue_splitter]
job_name = j1
src_db = dbname=a
dst_db = dbname=b
pgq_queue_name = q
pgq_consumer_id = %(job_name)s_consumer
loop_delay = 0.25
"""))
    assert cfg.consumer_name == "j1_consumer" and cfg.loop_delay == 0.25 and cfg.logfile is None


def test_job_name_defaults_to_file_name(tmp_path):
    cfg = load(write(tmp_path, "[queue_splitter]\nsrc_db=dbname=x\ndst_db=dbname=y\npgq_queue_name=q\n", "nightly.ini"))
    assert cfg.job_name == "nightly" and cfg.consumer_name == "nightly"


@pytest.mark.parametrize(
    "text, words",
    [
        ("[queue_splitter]\ndst_db=dbname=y\npgq_queue_name=q\n", ["src_db", "required"]),
        ("[queue_splitter]\nsrc_db=dbname=x\ndst_db=dbname=y\n", ["pgq_queue_name", "required"]),
        ("[other]\nsrc_db=x\n", ["no [queue_splitter] section"]),
        ("[queue_splitter]\nsrc_db=dbname=x\ndst_db=dbname=y\npgq_queue_name=q\nloop_delay=soon\n", ["loop_delay", "'soon'", "not a number"]),
        ("[queue_splitter]\nsrc_db=dbname=x\ndst_db=dbname=y\npgq_queue_name=q\nloop_delay=-1\n", ["loop_delay", ">= 0"]),
        ("not an ini", ["not a valid ini file"]),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    for w in words:
        assert w in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "absent.ini")


@pytest.fixture
def offline(tmp_path) -> Cluster:
    """A Cluster whose databases are never used: for tests that stop at the
    config file."""
    return Cluster(src_dsn="dbname=unused_src", dst_dsn="dbname=unused_dst", workdir=tmp_path)


def _queues(cluster, *names):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    for q in names:
        cluster.dst_exec("select pgq.create_queue(%s)", (q,))


def _consumers(cluster) -> list[str]:
    return [r[0] for r in cluster.src_exec("select consumer_name from pgq.get_consumer_info('singlequeue')")]


def test_queue_splitter3_section_and_aliases(cluster):
    _queues(cluster, "a")
    ini = cluster.write_ini(section="queue_splitter3", pgq_queue_name=None, queue_name="singlequeue",
                            consumer_name="alias_consumer")
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert _consumers(cluster) == ["alias_consumer"]
    assert "unknown key" not in cluster.log_text()


def test_set_overrides_keys(cluster):
    _queues(cluster, "a", "b")
    ini = cluster.write_ini()
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    cluster.src_exec("select pgq.insert_event('singlequeue', 'ev', 'd', 'a', 'b', null, null)")
    cluster.tick()
    result = cluster.run_driver("--once", "--set", "queue_field=extra2", "--set", "loop_delay=0", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert cluster.target_queue_counts() == {"a": 0, "b": 1}
    # -q: warnings and errors only
    quiet = cluster.run_driver("-q", "--once", "--set", "logfile=%(job_name)s-quiet.log", str(ini))
    assert quiet.returncode == 0
    assert (cluster.workdir / "test_splitter-quiet.log").read_text() == ""
    bad = cluster.run_driver("--once", "--set", "loop_delay", str(ini))
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr


def test_batch_collect_events_is_passed_to_next_batch_custom(cluster):
    _queues(cluster, "a")
    ini = cluster.write_ini(pgq_batch_collect_events="10", pgq_keep_lag="0", pgq_batch_collect_interval="1 hour")
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    # ticks as pgqd makes them (pgq.force_tick would bump the event sequence)
    cluster.src_exec("update pgq.queue set queue_ticker_max_lag = '0', queue_ticker_idle_period = '0'")

    def events_then_tick(start: int, n: int) -> None:
        cluster.src_exec("select pgq.insert_event('singlequeue', 'ev', i::text, 'a', null, null, null)"
                         "  from generate_series(%s, %s) i", (start, start + n - 1))
        cluster.src_exec("select pgq.ticker('singlequeue')")

    events_then_tick(0, 3)
    # 3 events < 10 and younger than an hour: no batch yet
    assert cluster.run_driver("--once", str(ini)).returncode == 0
    assert cluster.target_events("a") == []
    events_then_tick(3, 8)
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    assert len(cluster.target_events("a")) == 11


def test_unknown_keys_and_use_skylog_warn_once(cluster):
    _queues(cluster)
    ini = cluster.write_ini(use_skylog="1", pgq_lazy_fetch="500", colour="blue")  # the original's key is known
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 0, result.stderr + cluster.log_text()
    log = cluster.log_text()
    assert log.count("unknown key(s) ignored: colour ") == 1
    assert log.count("use_skylog is not supported and is ignored") == 1
    quiet = cluster.write_ini(name="quiet.ini", use_skylog="0")
    assert cluster.run_driver("--once", str(quiet)).returncode == 0
    assert cluster.log_text().count("use_skylog") == 1


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"src_db": None}, "[queue_splitter] src_db is required but not set"),
        ({"pgq_queue_name": None}, "pgq_queue_name (or queue_name) is required"),
        ({"loop_delay": "soon"}, "[queue_splitter] loop_delay = 'soon': not a number"),
        ({"loop_delay": "-1"}, "loop_delay = '-1': must be >= 0"),
        ({"queue_field": "extra9"}, "queue_field = 'extra9': must be one of extra1, extra2"),
        ({"log_size": "lots"}, "log_size = 'lots': not a size"),
        ({"connection_lifetime": "x"}, "connection_lifetime = 'x': not a number"),
        ({"pgq_keep_lag": "a while"}, "pgq_keep_lag = 'a while': not an interval"),
        ({"use_skylog": "maybe"}, "use_skylog = 'maybe': not a boolean"),
        ({"dst_db": "host='unterminated"}, "dst_db = <hidden>: not a valid libpq connection string"),
    ],
)
def test_bad_values_one_clear_line(offline, keys, message):
    ini = offline.write_ini(name="bad.ini", **keys)
    result = offline.run_driver("--once", str(ini))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and str(ini) in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_file_and_missing_section(offline):
    missing = offline.run_driver("--once", str(offline.workdir / "nope.ini"))
    assert missing.returncode == 2 and "cannot read config file" in missing.stderr
    other = offline.workdir / "other.ini"
    other.write_text("[something]\nsrc_db = x\n")
    result = offline.run_driver("--once", str(other))
    assert result.returncode == 2 and "no [queue_splitter] section" in result.stderr


def test_ini_prints_every_key_and_loads(cluster):
    _queues(cluster)
    result = cluster.run_driver("--ini")
    assert result.returncode == 0
    text = result.stdout
    for key in KEYS:
        assert re.search(rf"^#?{key.name} =", text, re.MULTILINE), key.name
    assert "#connection_lifetime = 1200" in text and "#log_count = 3" in text and "#queue_field = extra1" in text
    ini = cluster.workdir / "sample.ini"
    ini.write_text(
        text.replace("dbname=sourcedb host=oltp.example.com", cluster.src_dsn)
        .replace("dbname=batchdb host=batch.example.com", cluster.dst_dsn)
        .replace("= source_queue", "= singlequeue")
    )
    run = cluster.run_driver("--once", str(ini), env={"HOME": str(cluster.workdir)})
    assert run.returncode == 0, run.stderr
    assert "unknown key" not in run.stderr
    assert _consumers(cluster) == ["my_splitter"]


def test_help_reads_like_a_man_page():
    result = run_driver("--help")
    assert result.returncode == 0
    text = result.stdout
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "CONFIGURATION FILE", "SIGNALS", "EXIT STATUS", "FILES",
                    "EXAMPLES"):
        assert f"\n{heading}\n" in "\n" + text, heading
    for switch in ("-d", "-r", "-s", "-k", "-q", "-v", "-V", "--ini", "--set", "--register", "--unregister",
                   "--rewind", "--reset", "--status", "--once"):
        assert f" {switch}" in text, switch
    for key in KEYS:
        assert f"  {key.name}" in text, key.name
    for sig in ("SIGHUP", "SIGINT", "SIGTERM"):
        assert sig in text
    version = run_driver("-V")
    assert version.returncode == 0 and version.stdout.startswith("qsplit-driver ")


def test_operations_doc_lists_every_key():
    doc = (REPO / "docs" / "operations.md").read_text()
    table = doc[doc.index("## Configuration reference"):doc.index("## Command line")]
    for key in KEYS:
        assert f"| `{key.name}`" in table, key.name


def test_set_with_an_alias_overrides_the_key_the_file_uses(tmp_path):
    from qsplit.config import parse_overrides

    path = write(tmp_path, "[queue_splitter]\nsrc_db=dbname=x\ndst_db=dbname=y\npgq_queue_name=q\npgq_consumer_id=c\n")
    cfg = load(path, parse_overrides(["queue_name=other", "consumer_name=c2"]))
    assert cfg.queue_name == "other" and cfg.consumer_name == "c2"
    path3 = write(tmp_path, "[queue_splitter3]\nsrc_db=dbname=x\ndst_db=dbname=y\nqueue_name=q\n", "three.ini")
    assert load(path3, parse_overrides(["pgq_queue_name=other"])).queue_name == "other"


def test_config_keeps_no_second_copy_of_the_defaults(tmp_path):
    """Every default lives in KEYS: Config's fields have none of their own
    (two copies drift apart), and load() fills each one from its Key."""
    import dataclasses

    from qsplit.config import Config, KEYS_BY_NAME

    with_default = [f.name for f in dataclasses.fields(Config)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert with_default == [], f"Config fields with a default of their own: {with_default}"
    ini = write(tmp_path, "[queue_splitter]\nsrc_db = dbname=a\ndst_db = dbname=b\npgq_queue_name = q\n")
    cfg = load(ini)
    for name, key in KEYS_BY_NAME.items():
        if not key.required and name not in ("job_name", "pgq_consumer_id"):
            assert getattr(cfg, name) == key.default, name


def test_queue_field_names_are_defined_once():
    """The names queue_field accepts (config) are the ones the source can
    route by, column for column."""
    from qsplit.config import KEYS_BY_NAME, QUEUE_FIELDS
    from qsplit.source import route_column

    assert KEYS_BY_NAME["queue_field"].choices == QUEUE_FIELDS
    assert {f: route_column(f) for f in QUEUE_FIELDS} == {f: "ev_" + f for f in QUEUE_FIELDS}
    assert route_column("ev_extra2") == "ev_extra2" and route_column("ev_data") is None
