"""The runner's use of the SQL transform stage (``ematix_engine.transform.TransformStage``).

The stage itself is built separately; here a small stand-in with the same interface (DuckDB
over the reserved ``source`` table) is put in its place, so the runner's side is tested: the
stage is built once with the pipeline's SQL, lookups and UDFs, runs per batch, is closed, and
``transform_on_error`` decides what a failing batch does.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest

from ematix_engine import (
    DuckDBConnection,
    MemorySource,
    UnsupportedError,
    run_streaming_pipeline,
)
from tests.integration.streaming.kafka_helpers import kafka, produce, read_topic


class StandInStage:
    """Runs ``sql`` with DuckDB over the batch registered as ``source``."""

    built: list[StandInStage] = []

    def __init__(self, sql, *, lookups, udfs, aggregate_udfs, pipeline) -> None:
        self.sql, self.lookups, self.pipeline = sql, lookups, pipeline
        self.batches = 0
        self.closed = False
        StandInStage.built.append(self)

    def run(self, batch: pa.Table) -> pa.Table:
        self.batches += 1
        con = duckdb.connect()
        try:
            con.register("source", batch)
            return con.sql(self.sql).to_arrow_table()
        finally:
            con.close()

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[StandInStage]]:
    module = types.ModuleType("ematix_engine.transform")
    module.TransformStage = StandInStage  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ematix_engine.transform", module)
    StandInStage.built = []
    yield StandInStage


def test_transform_runs_per_batch(stage, tmp_path, pipeline_name: str) -> None:
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    result = run_streaming_pipeline(
        name=pipeline_name,
        source=MemorySource("m", [{"id": i, "kind": "a" if i % 2 else "b"} for i in range(10)],
                            batch_size=4),
        target=duck,
        target_table=("main", "odd"),
        transform_sql="SELECT id, upper(kind) AS kind FROM source WHERE kind = 'a'",
        lookups={"users": "a lookup"},
        exit_when_idle=True,
    )  # fmt: skip
    (built,) = stage.built
    assert (built.batches, built.closed, built.lookups) == (3, True, {"users": "a lookup"})
    assert (result.rows_in, result.rows_out) == (10, 5)
    with duckdb.connect(str(tmp_path / "d.duckdb")) as con:
        assert con.sql("SELECT DISTINCT kind FROM main.odd").fetchall() == [("A",)]


def test_drop_policy_skips_the_failing_batch_and_counts_it(stage, tmp_path, pipeline_name) -> None:
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    source = MemorySource("m", [{"id": 1, "n": "1"}, {"id": 2, "n": "x"}], batch_size=1)
    result = run_streaming_pipeline(
        name=pipeline_name, source=source, target=duck, target_table=("main", "t"),
        transform_sql="SELECT id, CAST(n AS INTEGER) AS n FROM source",
        transform_on_error="drop", exit_when_idle=True,
    )  # fmt: skip
    assert (result.rows_out, result.dropped_batches) == (1, 1)
    assert source.committed == 2  # dropping is a decision: the offsets move on


def test_fail_policy_moves_no_offset(stage, tmp_path, pipeline_name: str) -> None:
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    source = MemorySource("m", [{"id": 2, "n": "x"}])
    with pytest.raises(duckdb.ConversionException):
        run_streaming_pipeline(
            name=pipeline_name, source=source, target=duck, target_table=("main", "t"),
            transform_sql="SELECT id, CAST(n AS INTEGER) AS n FROM source", exit_when_idle=True,
        )  # fmt: skip
    assert source.committed == 0


def test_dlq_policy_sends_the_batch_messages(
    stage, kafka_bootstrap: str, kafka_topic: str, tmp_path, pipeline_name: str
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    dlq = f"{kafka_topic}-dlq"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(dlq, num_partitions=1)])[dlq].result(timeout=15)
    produce(kafka_bootstrap, kafka_topic, [{"id": 1, "n": "x"}, {"id": 2, "n": "y"}])
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    result = run_streaming_pipeline(
        name=pipeline_name, source=kafka(kafka_bootstrap, pipeline_name),
        source_query=kafka_topic, target=duck, target_table=("main", "t"),
        transform_sql="SELECT id, CAST(n AS INTEGER) AS n FROM source",
        transform_on_error="dlq", dead_letter_topic=dlq, max_batch_ms=300, exit_when_idle=True,
    )  # fmt: skip
    assert result.dlq_rows == 2
    letters = read_topic(kafka_bootstrap, dlq, 2)
    assert sorted(m.value() for m in letters) == [b'{"id": 1, "n": "x"}', b'{"id": 2, "n": "y"}']
    assert b"transform failed" in dict(letters[0].headers())["ematix.error"]


def test_without_the_stage_transform_sql_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path, pipeline_name: str
) -> None:
    monkeypatch.setitem(sys.modules, "ematix_engine.transform", None)  # import fails
    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    with pytest.raises(UnsupportedError, match="transform_sql"):
        run_streaming_pipeline(
            name=pipeline_name, source=MemorySource("m", [{"id": 1}]), target=duck,
            target_table=("main", "t"), transform_sql="SELECT * FROM source",
            exit_when_idle=True,
        )  # fmt: skip
