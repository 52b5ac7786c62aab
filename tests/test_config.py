"""Reading queue_splitter ini files."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsplit.config import ConfigError, load
from helpers import REPO


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
    cfg = load(write(tmp_path, "[queue_splitter]\nsrc_db=x\ndst_db=y\npgq_queue_name=q\n", "nightly.ini"))
    assert cfg.job_name == "nightly" and cfg.consumer_name == "nightly"


@pytest.mark.parametrize(
    "text, words",
    [
        ("[queue_splitter]\ndst_db=y\npgq_queue_name=q\n", ["src_db", "required"]),
        ("[queue_splitter]\nsrc_db=x\ndst_db=y\n", ["pgq_queue_name", "required"]),
        ("[other]\nsrc_db=x\n", ["no [queue_splitter] section"]),
        ("[queue_splitter]\nsrc_db=x\ndst_db=y\npgq_queue_name=q\nloop_delay=soon\n", ["loop_delay", "'soon'", "not a number"]),
        ("[queue_splitter]\nsrc_db=x\ndst_db=y\npgq_queue_name=q\nloop_delay=-1\n", ["loop_delay", ">= 0"]),
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
