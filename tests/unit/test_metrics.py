"""Metrics sinks: memory counters, stdout summary, and a real Prometheus scrape."""

from __future__ import annotations

import io
import socket
import urllib.request

import pytest

from ematix_engine.errors import ConfigError
from ematix_engine.ops import (
    METRICS_SCHEMES,
    MemoryMetrics,
    MetricsSink,
    NullMetrics,
    PrometheusMetrics,
    StdoutMetrics,
    open_metrics,
)
from ematix_engine.runlog import RunRecord, RunStatus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize(
    ("url", "cls"),
    [("null://", NullMetrics), ("stdout://", StdoutMetrics), ("memory://", MemoryMetrics)],
)
def test_open_metrics_simple_sinks(url, cls):
    sink = open_metrics(url)
    assert type(sink) is cls
    assert isinstance(sink, MetricsSink)
    sink.record_run("p", RunStatus.SUCCESS, 0.5, {"inserted": 1}, attempt=1)
    sink.flush()
    sink.close()


def test_default_is_null():
    assert isinstance(open_metrics(), NullMetrics)


def test_memory_counters():
    sink = MemoryMetrics()
    sink.record_run("orders", "success", 1.5, {"inserted": 10, "updated": 2, "closed": 0}, 1)
    sink.record_run("orders", RunStatus.FAILED, 0.25, {}, 1)
    sink.record_run("orders", "success", 3.0, {"inserted": 5}, 2)
    sink.record_run("daily", "skipped", 0.0, {}, 0)
    assert sink.runs_total == {
        ("orders", "success"): 2,
        ("orders", "failed"): 1,
        ("daily", "skipped"): 1,
    }
    assert sink.rows_total == {("orders", "inserted"): 15, ("orders", "updated"): 2}
    assert sink.last_duration == {"orders": 3.0, "daily": 0.0}
    assert sink.attempts == {"orders": 2, "daily": 0}
    assert sink.pipelines() == ["daily", "orders"]


def test_run_record_feeds_a_sink_directly():
    record = RunRecord(pipeline="orders", status="running", attempt=1)
    done = record.finished("success", rows_inserted=3, rows_closed=1)
    sink = MemoryMetrics()
    sink.record_run(done.pipeline, done.status, done.duration_s, done.rows, done.attempt)
    assert sink.rows_total == {("orders", "inserted"): 3, ("orders", "closed"): 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "success", 1.0, {}, 1), "pipeline name"),
        (("p", "success", -1.0, {}, 1), "duration_s"),
        (("p", "success", float("nan"), {}, 1), "duration_s"),
        (("p", "success", 1.0, {"inserted": -3}, 1), "rows\\['inserted'\\]"),
        (("p", "success", 1.0, {}, -1), "attempt"),
    ],
)
@pytest.mark.parametrize("cls", [NullMetrics, MemoryMetrics])
def test_invalid_observations_are_rejected(cls, args, message):
    with pytest.raises(ValueError, match=message):
        cls().record_run(*args)


def test_stdout_prints_on_flush_only_when_something_changed(capsys):
    sink = open_metrics("stdout://")
    sink.record_run("orders", "success", 1.25, {"inserted": 10, "updated": 0}, 1)
    sink.record_run("orders", "failed", 0.5, {}, 2)
    assert capsys.readouterr().err == ""  # nothing before flush
    sink.flush()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "[ematix metrics] orders: runs failed=1 success=1 | rows inserted=10 | last 0.500s "
        "| attempt 2\n"
    )
    sink.flush()
    sink.close()
    assert capsys.readouterr().err == ""  # no change since the last flush
    sink.record_run("b", "skipped", 0.0, {}, 0)
    sink.close()  # close flushes pending observations
    assert "[ematix metrics] b: runs skipped=1 | rows none | last 0.000s | attempt 0" in (
        capsys.readouterr().err
    )


def test_stdout_to_a_given_stream():
    out = io.StringIO()
    sink = StdoutMetrics(out)
    sink.record_run("x", "success", 1.0, {}, 1)
    sink.flush()
    assert out.getvalue().startswith("[ematix metrics] x: runs success=1")


def test_prometheus_endpoint_serves_run_metrics():
    port = _free_port()
    sink = open_metrics(f"prometheus://127.0.0.1:{port}")
    try:
        assert isinstance(sink, PrometheusMetrics)
        assert sink.port == port
        sink.record_run("orders", "success", 2.0, {"inserted": 10, "updated": 2}, 1)
        sink.record_run("orders", "failed", 0.3, {}, 2)
        sink.record_run("daily", RunStatus.SKIPPED, 0.0, {}, 0)
        samples = _scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        sink.close()
    assert samples['ematix_runs_total{pipeline="orders",status="success"}'] == 1
    assert samples['ematix_runs_total{pipeline="orders",status="failed"}'] == 1
    assert samples['ematix_runs_total{pipeline="daily",status="skipped"}'] == 1
    assert samples['ematix_rows_total{kind="inserted",pipeline="orders"}'] == 10
    assert samples['ematix_rows_total{kind="updated",pipeline="orders"}'] == 2
    assert samples['ematix_run_duration_seconds_count{pipeline="orders"}'] == 2
    assert samples['ematix_run_duration_seconds_sum{pipeline="orders"}'] == pytest.approx(2.3)
    assert samples['ematix_run_duration_seconds_bucket{le="0.5",pipeline="orders"}'] == 1
    assert samples['ematix_attempts{pipeline="orders"}'] == 2
    assert samples['ematix_last_success_timestamp_seconds{pipeline="orders"}'] > 0
    assert 'ematix_last_success_timestamp_seconds{pipeline="daily"}' not in samples


def test_prometheus_uses_its_own_registry_and_closes_its_port():
    from prometheus_client import REGISTRY

    one = open_metrics("prometheus://127.0.0.1:0")
    two = open_metrics("prometheus://127.0.0.1:0")  # same metric names, no collision
    try:
        assert one.port != two.port
        one.record_run("a", "success", 1.0, {}, 1)
        assert (
            REGISTRY.get_sample_value("ematix_runs_total", {"pipeline": "a", "status": "success"})
            is None
        )
        assert 'ematix_runs_total{pipeline="a",status="success"}' in _scrape(one.url)
        assert 'ematix_runs_total{pipeline="a",status="success"}' not in _scrape(two.url)
    finally:
        one.close()
        two.close()
        one.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(one.url, timeout=2)


def test_prometheus_wildcard_bind():
    sink = open_metrics("prometheus://:0")
    try:
        assert sink.addr == "0.0.0.0"
        assert sink.url.startswith("http://127.0.0.1:")
        _scrape(sink.url)
    finally:
        sink.close()


def test_prometheus_port_in_use_is_an_oserror():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            open_metrics(f"prometheus://127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("prometheus://", "needs a port"),
        ("prometheus://localhost", "needs a port"),
        ("prometheus://:notaport", "prometheus://:9100"),
        ("prometheus://:70000", "prometheus://:9100"),
        ("promethus://:9100", "did you mean 'prometheus'"),
        ("otlp://collector:4318", "use one of: memory://"),
    ],
)
def test_bad_metrics_urls(url, message):
    with pytest.raises(ConfigError, match=message):
        open_metrics(url)


def test_schemes_listed():
    assert METRICS_SCHEMES == ("memory", "null", "prometheus", "stdout")
