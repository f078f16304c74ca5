"""Causal constraints on streaming pipelines, end to end with real parts.

A MemorySource (or a folder of JSON-lines files, through TOML) into DuckDB with the DataFusion
transform, a ``never`` and a ``must_match`` constraint, a stdout alerter and a Slack-compatible
webhook on 127.0.0.1; the Kafka case (Tansu) reads the violation records back from the DLQ.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import duckdb
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import generate_latest

from ematix_engine import ConfigError, DuckDBConnection, run_pipeline, run_streaming_pipeline
from ematix_engine.causal import CausalSpec, must_match, never
from ematix_engine.ops import StdoutAlerter
from ematix_engine.streaming import MemorySource
from ematix_engine.streaming.api import streaming_spec
from ematix_engine.streaming.metrics import StreamingMetrics
from ematix_engine.streaming.runner import StreamRunner
from tests.integration.streaming.kafka_helpers import kafka, produce, read_topic
from tests.unit.test_alerters import SlackStub

CAUSAL = CausalSpec(id_column="id", caused_by_column="cause", name_column="event")
CONSTRAINTS = [
    must_match("Order.placed", "Order.shipped", name="every-order-shipped"),
    never(
        ("Payment.charged", "Payment.charged"),
        within_cause="Order.placed",
        name="no-double-charge",
    ),
]
TRANSFORM = "SELECT id, kind AS event, cause, amount FROM source WHERE NOT test"
GUARDED = {
    "target_table": ("main", "orders"),
    "transform_sql": TRANSFORM,
    "causal": CAUSAL,
    "constraints": CONSTRAINTS,
}


def _row(id: str, kind: str, cause: str | None = None, test: bool = False) -> dict:
    return {"id": id, "kind": kind, "cause": cause, "amount": 1.0, "test": test}


# Batches of three: the double charge is in batch 2; x1 (a test row the transform filters out)
# would be a second and third one; o2 is shipped in batch 3 (the window carries across
# batches); o3 is never shipped, which the end of the stream reveals.
ROWS = [
    _row("o1", "Order.placed"),
    _row("c1", "Payment.charged", "o1"),
    _row("s1", "Order.shipped", "o1"),
    _row("o2", "Order.placed"),
    _row("c2", "Payment.charged", "o2"),
    _row("c3", "Payment.charged", "o2"),
    _row("x1", "Payment.charged", "o2", test=True),
    _row("s2", "Order.shipped", "o2"),
    _row("o3", "Order.placed"),
]
EXPECTED = [
    ("no-double-charge", "never", ["o2", "c2", "c3"]),
    ("every-order-shipped", "end_of_stream", ["o3"]),
]


def _seen(violations) -> list[tuple[str, str, list[str]]]:
    return [(v.constraint, v.kind, [e.id for e in v.events]) for v in violations]


def _duck(tmp_path: Path) -> DuckDBConnection:
    return DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb"))


def _ids(tmp_path: Path, table: str = "orders") -> list[str]:
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        return sorted(r[0] for r in con.sql(f"SELECT id FROM main.{table}").fetchall())


def test_memory_into_duckdb_with_never_and_must_match(tmp_path: Path, pipeline_name: str) -> None:
    out = io.StringIO()
    slack = SlackStub()
    try:
        spec = streaming_spec(
            name=pipeline_name,
            source=MemorySource("orders", ROWS, batch_size=3),
            target=_duck(tmp_path),
            **GUARDED,
            alerters=[StdoutAlerter(out), slack.url()],
        )
        metrics = StreamingMetrics(pipeline_name)
        per_batch: list[list] = []
        runner = StreamRunner(
            spec, metrics=metrics, on_progress=lambda p: per_batch.append(_seen(p.violations))
        )
        result = runner.run(exit_when_idle=True)
    finally:
        slack.close()

    assert _seen(result.violations) == EXPECTED
    assert result.violation_count == 2
    assert per_batch == [[], [EXPECTED[0]], []]  # end-of-stream ones come after the last batch
    assert (result.rows_in, result.rows_out, result.stopped) == (9, 8, "idle")
    assert _ids(tmp_path) == sorted(r["id"] for r in ROWS if not r["test"])
    # metrics, by constraint, as Prometheus serves them
    assert metrics.value("causal_violations", constraint="no-double-charge") == 1
    assert metrics.value("causal_violations", constraint="every-order-shipped") == 1
    assert metrics.value("causal_events") == 8
    exposition = generate_latest(metrics.registry).decode()
    assert (
        f'ematix_streaming_causal_violations_total{{constraint="no-double-charge",'
        f'pipeline="{pipeline_name}"}} 1.0'
    ) in exposition
    # the alerters: one line per constraint and batch on the stdout alerter, the same to Slack
    lines = out.getvalue().splitlines()
    assert [line.split("[ematix] ", 1)[1] for line in lines] == [
        f"VIOLATION pipeline {pipeline_name!r}: causal constraint 'no-double-charge' violated "
        f"1 time",
        f"VIOLATION pipeline {pipeline_name!r}: causal constraint 'every-order-shipped' "
        f"violated 1 time",
    ]
    texts = [json.loads(r["body"])["text"] for r in slack.requests]
    assert len(texts) == 2
    assert "violated a causal constraint" in texts[0]
    assert "Order.placed#o2, Payment.charged#c2, Payment.charged#c3" in texts[0]
    assert "trigger unmatched at the end of the stream (Order.placed#o3)" in texts[1]


def test_a_stop_is_not_the_end_of_the_stream(tmp_path: Path, pipeline_name: str) -> None:
    source = MemorySource(
        "orders", [*ROWS[:3], _row("o9", "Order.placed"), *ROWS[3:]], batch_size=4
    )
    spec = streaming_spec(
        name=pipeline_name,
        source=source,
        target=_duck(tmp_path),
        **GUARDED,
    )
    runner = StreamRunner(spec)
    runner.on_progress = lambda progress: runner.stop()  # after the first batch
    result = runner.run(exit_when_idle=True)

    # o9 is still waiting for its shipment: not a violation, the stream goes on next run
    assert (result.rows_in, result.stopped, result.violations) == (4, "stopped", [])
    assert source.committed == 4


def test_a_stop_after_the_last_batch_is_not_the_end_of_the_stream_either(
    tmp_path: Path, pipeline_name: str
) -> None:
    source = MemorySource("orders", [_row("o9", "Order.placed")], batch_size=4)
    spec = streaming_spec(name=pipeline_name, source=source, target=_duck(tmp_path), **GUARDED)
    runner = StreamRunner(spec)
    runner.on_progress = lambda progress: runner.stop()  # the source is drained by now
    result = runner.run(exit_when_idle=True)

    # Asked to stop: o9's open trigger is not judged, even though nothing more was left.
    assert (result.rows_in, result.stopped, result.violations) == (1, "stopped", [])


def test_an_unknown_column_fails_at_the_first_batch_before_any_write(
    tmp_path: Path, pipeline_name: str
) -> None:
    source = MemorySource("orders", ROWS, batch_size=3)
    with pytest.raises(ConfigError) as caught:
        run_streaming_pipeline(
            name=pipeline_name,
            source=source,
            target=_duck(tmp_path),
            target_table=("main", "orders"),
            causal=CAUSAL,  # "event" only exists after the transform, and there is none
            constraints=CONSTRAINTS,
            exit_when_idle=True,
        )
    assert str(caught.value).startswith(
        f"streaming pipeline {pipeline_name!r}: causal name_column 'event' is not a column of "
        f"the rows the pipeline writes (after transform_sql); columns: id, kind, cause, amount, "
        f"test, _event_ts"
    )
    assert source.committed == 0
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        assert con.sql("SELECT count(*) FROM information_schema.tables").fetchall() == [(0,)]


def test_toml_pipeline_from_files(tmp_path: Path, pipeline_name: str) -> None:
    incoming = tmp_path / "drop" / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "orders.ndjson").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    config = tmp_path / "pipeline.toml"
    config.write_text(
        f"""
pipeline_name = "{pipeline_name}"
source_query = "incoming"

[source]
kind = "object_store_local"
path = "{tmp_path / "drop"}"
format = "json_lines"
settle_ms = 0

[target]
kind = "duckdb"
path = "{tmp_path / "wh.duckdb"}"

[target.table]
schema = "main"
name = "orders"

[transform]
sql = "{TRANSFORM}"

[causal]
id_column = "id"
caused_by_column = "cause"
name_column = "event"
window_size = 1000

[[constraints]]
kind = "must_match"
name = "every-order-shipped"
trigger = "Order.placed"
response = "Order.shipped"

[[constraints]]
kind = "never"
name = "no-double-charge"
pattern = ["Payment.charged", "Payment.charged"]
within_cause = {{ name = "Order.placed" }}
"""
    )
    result = run_pipeline(config=config, exit_when_idle=True)

    assert sorted(_seen(result.violations)) == sorted(EXPECTED)
    assert _ids(tmp_path) == sorted(r["id"] for r in ROWS if not r["test"])


def _new_topic(bootstrap: str) -> str:
    name = f"ematix-test-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(
        timeout=15
    )
    return name


def test_kafka_violations_go_to_the_dead_letter_topic(
    kafka_bootstrap: str, kafka_topic: str, tmp_path: Path, pipeline_name: str
) -> None:
    dlq = _new_topic(kafka_bootstrap)
    produce(kafka_bootstrap, kafka_topic, ROWS)
    result = run_streaming_pipeline(
        name=pipeline_name,
        source=kafka(kafka_bootstrap, pipeline_name),
        source_query=kafka_topic,
        target=_duck(tmp_path),
        **GUARDED,
        dead_letter_topic=dlq,
        batch_size=3,
        max_batch_ms=300,
        idle_pause_ms=10,
        exit_when_idle=True,
    )

    assert _seen(result.violations) == EXPECTED
    assert result.dlq_rows == 2
    assert _ids(tmp_path) == sorted(r["id"] for r in ROWS if not r["test"])
    records = read_topic(kafka_bootstrap, dlq, 2)
    values = sorted((json.loads(m.value()) for m in records), key=lambda v: v["seq"])
    for value in values:
        assert value.pop("detected_at").endswith("+00:00")
        value.pop("seq")
    assert values == [
        {
            "pipeline": pipeline_name,
            "constraint": "no-double-charge",
            "constraint_kind": "never",
            "kind": "never",
            "event_ids": ["o2", "c2", "c3"],
            "events": [
                {"id": "o2", "name": "Order.placed"},
                {"id": "c2", "name": "Payment.charged"},
                {"id": "c3", "name": "Payment.charged"},
            ],
        },
        {
            "pipeline": pipeline_name,
            "constraint": "every-order-shipped",
            "constraint_kind": "must_match",
            "kind": "end_of_stream",
            "event_ids": ["o3"],
            "events": [{"id": "o3", "name": "Order.placed"}],
        },
    ]
    by_constraint = {m.key(): dict(m.headers()) for m in records}
    headers = by_constraint[b"no-double-charge"]
    assert headers["ematix.pipeline"] == pipeline_name.encode()
    assert headers["ematix.constraint"] == b"no-double-charge"
    assert headers["ematix.violation"] == b"never"
    assert headers["ematix.error"].startswith(b"causal constraint violated: no-double-charge")


def test_a_duplicate_event_id_is_counted_and_the_run_goes_on(
    tmp_path: Path, pipeline_name: str
) -> None:
    rows = [*ROWS[:3], _row("o1", "Order.placed")]  # o1 again, in the second batch
    metrics = StreamingMetrics(pipeline_name)
    spec = streaming_spec(
        name=pipeline_name,
        source=MemorySource("orders", rows, batch_size=3),
        target=_duck(tmp_path),
        **GUARDED,
    )
    result = StreamRunner(spec, metrics=metrics).run(exit_when_idle=True)

    assert (result.rows_out, result.violations) == (4, [])  # the duplicate opened no trigger
    assert metrics.value("causal_rejected") == 1
    assert metrics.value("causal_events") == 4
