"""Prometheus metrics of a running driver (metrics_port): what /metrics says
equals what the target received, label values stay bounded, refused batches
and errors are counted, the server survives reloads and stops with the
driver, and a bad metrics_port is one line naming the key, exit 2.

Then the monitoring files under contrib/ against the real tools: promtool
checks and unit-tests the alert rules, the Grafana dashboard is valid JSON
querying metrics the driver has, and a real Prometheus (Debian package
prometheus, started here on 127.0.0.1) scrapes a running driver: what it
stores equals what the target received, and the stalled-consumer alert
fires when the target refuses batches."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helpers import REPO, Driver, process_alive, produce, wait_for

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
MISSING = "scripts/prepare-machine.sh installs the Debian package prometheus (prometheus, promtool)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        return resp.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def events_by_queue(text: str, actions=("inserted", "created")) -> dict[str, float]:
    out: dict[str, float] = {}
    for (name, labels), v in samples(text).items():
        lab = dict(labels)
        if name == "qsplit_events_total" and lab["action"] in actions:
            out[lab["queue"]] = out.get(lab["queue"], 0) + v
    return out


def register(cluster, ini) -> None:
    """Register the consumer, so that the events produced next are its."""
    result = cluster.run_driver("--register", str(ini))
    assert result.returncode == 0, result.stderr


def port_is_free(port: int) -> bool:
    """Whether a server could listen on *port* now (as the driver's server
    does, with SO_REUSEADDR: closed scrape connections may linger)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
        return True


@pytest.fixture
def queues(cluster):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    cluster.dst_exec("select pgq.create_queue('q.a'); select pgq.create_queue('q.b'); select pgq.create_queue('q.c')")
    return cluster


def test_metrics_equal_what_the_target_received_and_survive_reloads(queues):
    c = queues
    port = free_port()
    ini = c.write_ini(metrics_port=str(port), loop_delay="0.05")
    # registered first: the server answers before the driver's first connect,
    # and events produced before the consumer exists are not its
    register(c, ini)
    with_driver = Driver(c, str(ini))
    try:
        # (never probe by binding the port: the driver may be binding it just then)
        first = wait_for(lambda: _try_scrape(port) or not process_alive(with_driver.pid) and with_driver.stderr(),
                         what="the metrics server")
        # present before any batch: build info, the step series, the gauges
        assert value(first, "qsplit_build_info", version=__import__("qsplit").__version__,
                     consumer="test_splitter", source_queue="singlequeue") == 1.0
        assert value(first, "qsplit_loop_delay_seconds") == 0.05
        assert value(first, "qsplit_batch_step_duration_seconds_count", step="stream") == 0.0

        sent = {"q.a": 30, "q.b": 7, "q.c": 1}
        produce(c, sent)
        wait_for(lambda: c.target_queue_counts().get("q.c") == 1, what="the events to arrive")
        produce(c, {"q.a": 5})
        wait_for(lambda: c.target_queue_counts().get("q.a") == 35, what="the second batch")

        # scrapes while the driver reloads its config, again and again
        stop = threading.Event()
        failures: list[BaseException] = []
        n_scrapes = [0]

        def keep_scraping() -> None:
            while not stop.is_set():
                try:
                    scrape(port)
                    n_scrapes[0] += 1
                except BaseException as exc:  # noqa: BLE001 - the test reports it
                    failures.append(exc)

        scraper = threading.Thread(target=keep_scraping)
        scraper.start()
        try:
            for _ in range(10):
                with_driver.signal(signal.SIGHUP)
                wait_for(lambda: n_scrapes[0] > 0, what="a scrape")
            wait_for(lambda: c.log_text().count("config reloaded") >= 1, what="a reload")
            produce(c, {"q.b": 3})
            wait_for(lambda: c.target_queue_counts().get("q.b") == 10, what="a batch after the reloads")
        finally:
            stop.set()
            scraper.join(timeout=30)
        assert not failures, failures[:3]
        assert n_scrapes[0] > 0

        wait_for(lambda: events_by_queue(scrape(port)) == {"q.a": 35.0, "q.b": 10.0, "q.c": 1.0},
                 what="the event counters")
        text = scrape(port)
        received = {q: n for q, n in c.target_queue_counts().items() if q.startswith("q.")}
        assert events_by_queue(text) == {q: float(n) for q, n in received.items()}
        assert value(text, "qsplit_batches_total", result="applied") >= 3
        assert value(text, "qsplit_batch_duration_seconds_count") >= 3
        for step in ("next_batch", "stream", "apply", "commits"):
            assert value(text, "qsplit_batch_step_duration_seconds_count", step=step) >= 3, step
        assert value(text, "qsplit_batch_open") == 0
        assert 0 <= value(text, "qsplit_source_lag_seconds") < 60
        assert value(text, "qsplit_last_batch_timestamp_seconds") > 1.7e9
        assert value(text, "qsplit_seconds_since_last_batch") < 60
        assert value(text, "qsplit_batches_refused_total", code="QS002") is None

        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

        # SIGTERM: the driver exits 0 and the port is free again
        with_driver.signal(signal.SIGTERM)
        assert with_driver.wait() == 0
        assert port_is_free(port)
        assert "Traceback" not in c.log_text() + with_driver.stderr()
    finally:
        with_driver.kill()


def test_promtool_accepts_the_exposition(queues):
    """promtool (Debian package prometheus, installed by prepare-machine.sh)
    lints the scraped text (names, units, help, types), dead letters and
    all."""
    assert PROMTOOL, MISSING
    c = queues
    port = free_port()
    ini = c.write_ini(metrics_port=str(port), on_unknown_queue="dead_letter", on_null_queue="skip", loop_delay="0.05")
    register(c, ini)
    produce(c, {"q.a": 2, "nowhere": 3, "": 1})
    c.src_exec("select pgq.insert_event('singlequeue', 'ev', 'd', null, null, null, null)")
    c.tick()
    with_driver = Driver(c, str(ini))
    try:
        text = wait_for(lambda: (t := _try_scrape(port)) and value(t, "qsplit_batches_total", result="applied") == 2
                        and t, what="both batches in the metrics")
        assert value(text, "qsplit_events_total", queue="nowhere", action="dead_letter") == 3
        assert value(text, "qsplit_events_total", queue="(NULL)", action="skipped") == 1
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        with_driver.signal(signal.SIGINT)
        assert with_driver.wait() == 0


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_queue_labels_are_bounded(queues):
    """One unknown queue name per event: at most metrics_top_queues label
    values of their own, the rest under queue="other", no event lost from
    the counts."""
    c = queues
    port = free_port()
    ini = c.write_ini(metrics_port=str(port), metrics_top_queues="3", on_unknown_queue="skip", loop_delay="0.05")
    register(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 'ev', 'd', 'junk.' || i, null, null, null)"
               " from generate_series(1, 200) i")
    produce(c, {"q.a": 50, "q.b": 20})
    with_driver = Driver(c, str(ini))
    try:
        wait_for(lambda: c.target_queue_counts().get("q.b") == 20, what="the batch")
        text = wait_for(lambda: (t := _try_scrape(port)) and value(t, "qsplit_batches_total", result="applied")
                        and t, what="the applied batch in the metrics")
        queue_labels = {dict(labels)["queue"] for (name, labels) in samples(text) if name == "qsplit_events_total"}
        # the biggest queues of the batch keep their own label
        assert {"q.a", "q.b"} <= queue_labels and "other" in queue_labels
        assert len(queue_labels) <= 3 + 1
        assert events_by_queue(text) == {"q.a": 50.0, "q.b": 20.0}
        assert sum(events_by_queue(text, actions=("skipped",)).values()) == 200.0
    finally:
        with_driver.signal(signal.SIGINT)
        assert with_driver.wait() == 0


def test_refused_batches_and_connection_errors_are_counted(queues):
    c = queues
    port = free_port()
    ini = c.write_ini(metrics_port=str(port), loop_delay="0.05")
    register(c, ini)
    produce(c, {"q.a": 1, "nowhere": 1})  # QS002: the target has no queue 'nowhere'
    with_driver = Driver(c, str(ini))
    try:
        text = wait_for(lambda: (t := _try_scrape(port)) and value(t, "qsplit_batches_refused_total", code="QS002")
                        and t, what="a refused batch in the metrics")
        assert value(text, "qsplit_batch_open") == 1
        assert value(text, "qsplit_batches_total", result="applied") == 0
        assert events_by_queue(text) == {}
        # the target's sessions are killed: a connection error, then a reconnect
        c.dst_exec("select pgq.create_queue('nowhere')")
        wait_for(lambda: c.target_queue_counts().get("nowhere") == 1, what="the batch once the queue exists")
        text = wait_for(lambda: (t := _try_scrape(port)) and value(t, "qsplit_batches_total", result="applied")
                        and t, what="the applied batch")
        assert value(text, "qsplit_batch_open") == 0
        assert value(text, "qsplit_reconnects_total") >= 1  # every failed attempt closes the connections
        assert events_by_queue(text) == {"q.a": 1.0, "nowhere": 1.0}
        assert value(text, "qsplit_errors_total", kind="connection") == 0

        # the driver's target session is killed: the next batch meets a lost connection
        c.dst_exec("select pg_terminate_backend(pid) from pg_stat_activity"
                   " where datname = current_database() and application_name like 'qsplit-driver %'")
        produce(c, {"q.b": 2})
        wait_for(lambda: c.target_queue_counts().get("q.b") == 2, what="the batch after the lost connection")
        text = scrape(port)
        assert value(text, "qsplit_errors_total", kind="connection") == 1
        assert events_by_queue(text) == {"q.a": 1.0, "nowhere": 1.0, "q.b": 2.0}
    finally:
        with_driver.signal(signal.SIGINT)
        assert with_driver.wait() == 0


@pytest.mark.parametrize("read_ahead", ["0", "1"])
def test_a_batch_that_cannot_be_read_shows_as_open(ascii_source, read_ahead):
    """A batch the driver took but cannot read (here bytes a UTF8 target
    cannot take, 22021) is refused and stays open: qsplit_batch_open is 1,
    which QsplitConsumerStalled needs to fire.  In both loops (read_ahead = 1
    left it at 0: the gauge was only set when a batch read ahead reached the
    target's apply); and back to 0 once the batch moved."""
    c = ascii_source
    c.src_exec("select pgq.create_queue('singlequeue')")
    c.dst_exec("select pgq.create_queue('a')")
    port = free_port()
    ini = c.write_ini(metrics_port=str(port), loop_delay="0.05", read_ahead=read_ahead)
    register(c, ini)
    c.src_exec("select pgq.insert_event('singlequeue', 't', 'fine', 'a', NULL, NULL, NULL)")
    c.tick()
    c.src_exec("select pgq.insert_event('singlequeue', 't', convert_from('\\x41ff42'::bytea, 'SQL_ASCII'),"
               " 'a', NULL, NULL, NULL)")
    c.tick()
    (table,) = c.src_exec("select queue_data_pfx from pgq.queue where queue_name = 'singlequeue'")[0]
    with_driver = Driver(c, str(ini))
    try:
        text = wait_for(lambda: (t := _try_scrape(port)) and (value(t, "qsplit_batches_refused_total", code="22021")
                                                               or 0) >= 2 and t,
                        what="the batch refused twice")
        assert value(text, "qsplit_batches_total", result="applied") == 1
        assert value(text, "qsplit_batch_open") == 1
        c.src_exec(f"update {table} set ev_data = 'AB' where ev_data <> 'fine'")
        wait_for(lambda: len(c.target_events("a")) == 2, what="the repaired batch")
        text = wait_for(lambda: (t := scrape(port)) and value(t, "qsplit_batches_total", result="applied") == 2
                        and t, what="the applied batch in the metrics")
        assert value(text, "qsplit_batch_open") == 0
    finally:
        with_driver.signal(signal.SIGINT)
        assert with_driver.wait() == 0


def test_reload_moves_the_metrics_server_or_keeps_it(queues):
    """SIGHUP with another metrics_port: served there, the old port freed;
    a port in use on reload: logged, the server stays where it was."""
    c = queues
    first, second = free_port(), free_port()
    ini = c.write_ini(metrics_port=str(first), loop_delay="0.05")
    with_driver = Driver(c, str(ini))
    try:
        wait_for(lambda: _try_scrape(first), what="the first port")
        c.write_ini(metrics_port=str(second), loop_delay="0.05")
        with_driver.signal(signal.SIGHUP)
        wait_for(lambda: _try_scrape(second), what="the server on the new port")
        wait_for(lambda: port_is_free(first), what="the old port to be released")
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            busy = taken.getsockname()[1]
            c.write_ini(metrics_port=str(busy), loop_delay="0.05")
            with_driver.signal(signal.SIGHUP)
            wait_for(lambda: f"metrics_port = {busy}" in c.log_text(), what="the reload error")
            assert _try_scrape(second) is not None
        assert f"metrics stay on 127.0.0.1:{second}" in c.log_text()
    finally:
        with_driver.signal(signal.SIGINT)
        assert with_driver.wait() == 0
    assert port_is_free(second)


@pytest.mark.parametrize("value_, message", [
    ("many", "metrics_port = 'many': not a whole number"),
    ("70000", "metrics_port = '70000': must be <= 65535"),
])
def test_bad_metrics_port_is_one_line_exit_2(cluster, value_, message):
    ini = cluster.write_ini(metrics_port=value_)
    result = cluster.run_driver("--once", str(ini))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("daemon", [False, True])
def test_metrics_port_in_use_is_one_line_exit_2(cluster, daemon):
    cluster.src_exec("select pgq.create_queue('singlequeue')")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ini = cluster.write_ini(metrics_port=str(port))
        result = cluster.run_driver(*(["-d"] if daemon else []), str(ini))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"metrics_port = {port}" in lines[0] and "cannot listen" in lines[0], result.stderr
    assert not (cluster.workdir / "pid" / "test_splitter.pid").exists()


# contrib/: alert rules, dashboard, a real Prometheus ---------------------------

RULES = REPO / "contrib" / "prometheus" / "qsplit-alerts.yml"
RULES_TEST = REPO / "contrib" / "prometheus" / "qsplit-alerts.test.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "qsplit.json"

# the sample names each metric type exposes
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created"),
             "info": ("_info",), "summary": ("", "_count", "_sum", "_created")}


def exposed_names() -> set[str]:
    """Every sample name the driver's registry can expose."""
    from qsplit.config import load
    from qsplit.metrics import Metrics

    ini = REPO / "examples" / "queue_splitter.ini"
    text = generate_latest(Metrics(load(ini)).registry).decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in _SUFFIXES[family.type])
    return names


def queried_names(text: str) -> set[str]:
    return set(re.findall(r"\bqsplit_[a-z_]+", text))


def test_alert_rules_pass_promtool_check_and_unit_tests():
    assert PROMTOOL, MISSING
    check = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 5 rules found" in check.stdout, check.stdout + check.stderr
    unit = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST.name], capture_output=True, text=True,
                          cwd=RULES_TEST.parent)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr
    alerts = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    assert alerts == {"QsplitConsumerStalled", "QsplitLagHigh", "QsplitBatchesRefused", "QsplitDeadLettersGrowing",
                      "QsplitDriverDown"}
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text()))
    assert tested == alerts, "every alert has a unit test"


def test_alert_rules_and_dashboard_query_metrics_the_driver_exposes():
    names = exposed_names()
    assert queried_names(RULES.read_text()) <= names, queried_names(RULES.read_text()) - names
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs and all(t.get("refId") for p in dashboard["panels"] for t in p["targets"])
    used = queried_names("\n".join(exprs))
    assert used and used <= names, used - names
    # the panels: events/s per queue, lag, batch duration quantiles, errors
    for wanted in ("qsplit_events_total", "qsplit_source_lag_seconds", "qsplit_batch_duration_seconds_bucket",
                   "qsplit_batches_refused_total", "qsplit_errors_total"):
        assert wanted in used, wanted
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


class Prometheus:
    """A Prometheus server of the test's own: 127.0.0.1, a free port, a temp
    config and storage; 1 s scrape and rule evaluation."""

    def __init__(self, workdir: Path, targets: list[str], rules: Path) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {rules}\n"
            "scrape_configs:\n  - job_name: qsplit\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n"
        )
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=60, what="prometheus to be ready")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> object:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> dict[str, float]:
        """An instant query: {value of the first label (or ''): value}."""
        out = {}
        for row in self.api("query", query=expr)["result"]:
            labels = row["metric"]
            out[next(iter(labels.values()), "")] = float(row["value"][1])
        return out

    def firing(self) -> dict[str, dict]:
        return {a["labels"]["alertname"]: a for a in self.api("alerts")["alerts"] if a["state"] == "firing"}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def fast_rules(tmp_path: Path) -> Path:
    """The shipped rules with every `for:` at 2 s, so the test waits seconds
    instead of minutes; the expressions are the shipped ones."""
    text, n = re.subn(r"(?m)^(\s+for:) \S+$", r"\1 2s", RULES.read_text())
    assert n >= 3
    path = tmp_path / "qsplit-alerts-fast.yml"
    path.write_text(text)
    return path


def test_prometheus_scrapes_the_counts_the_target_received_and_sees_a_stall(queues, fast_rules, tmp_path):
    assert PROMETHEUS, MISSING
    c = queues
    port = free_port()
    ini = c.write_ini(metrics_port=str(port), loop_delay="0.1")
    register(c, ini)
    driver = Driver(c, str(ini))
    prom: Prometheus | None = None
    try:
        prom = Prometheus(tmp_path, [f"127.0.0.1:{port}"], fast_rules)
        # events flow while Prometheus scrapes
        for routes in ({"q.a": 40, "q.b": 9}, {"q.b": 3, "q.c": 12}, {"q.a": 1}):
            produce(c, routes)
        wait_for(lambda: c.target_queue_counts().get("q.a") == 41 and c.target_queue_counts().get("q.c") == 12,
                 what="the events on the target")
        received = {q: float(n) for q, n in c.target_queue_counts().items() if q.startswith("q.")}
        assert received == {"q.a": 41.0, "q.b": 12.0, "q.c": 12.0}
        per_queue = 'sum by (queue) (qsplit_events_total{job="qsplit", action=~"inserted|created"})'
        wait_for(lambda: prom.query(per_queue) == received, timeout=30,
                 what=f"Prometheus to hold the target's counts {received}")
        assert prom.query('max(qsplit_batch_open{job="qsplit"})') == {"": 0.0}
        assert "QsplitConsumerStalled" not in prom.firing()

        # the target refuses the next batch (QS002: no queue 'nowhere'): the
        # driver retries with backoff, applies nothing, and the alert fires
        produce(c, {"nowhere": 1, "q.a": 1})
        firing = wait_for(lambda: (f := prom.firing()) and "QsplitConsumerStalled" in f
                          and "QsplitBatchesRefused" in f and f, timeout=45, what="the stall alerts to fire")
        assert firing["QsplitBatchesRefused"]["labels"]["code"] == "QS002"
        assert firing["QsplitConsumerStalled"]["labels"]["instance"] == f"127.0.0.1:{port}"
        assert c.target_queue_counts()["q.a"] == 41, "the refused batch applied nothing"
        # the counters Prometheus holds still equal what the target has
        assert prom.query(per_queue) == received
    finally:
        if prom is not None:
            prom.stop()
        driver.signal(signal.SIGINT)
        assert driver.wait() == 0
    assert prom.proc.returncode is not None
