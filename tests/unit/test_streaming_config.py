"""Streaming configuration: TOML and keyword forms build the same spec; errors name the key."""

from __future__ import annotations

import pytest

from ematix_engine import (
    ConfigError,
    DuckDBConnection,
    KafkaConnection,
    MemorySource,
    ObjectStoreLocalConnection,
    Source,
    Target,
)
from ematix_engine.streaming.api import streaming_spec
from ematix_engine.streaming.supervisor import RestartPolicy
from ematix_engine.streaming.toml import load_config, spec_from_mapping

KAFKA = {"kind": "kafka", "bootstrap_servers": "localhost:9092", "group_id": "ematix"}
PG = {"kind": "postgres", "url": "postgres://localhost/mydb"}


def _toml(**top) -> dict:
    data = {
        "pipeline_name": "events-to-pg",
        "source_query": "events",
        "source": dict(KAFKA),
        "target": {**PG, "table": {"schema": "public", "name": "events"}},
    }
    data.update(top)
    return data


def test_guide_minimal_config_parses(tmp_path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(
        """
pipeline_name = "events-to-pg"
source_query = "events"
idle_pause_ms = 500

[source]
kind = "kafka"
bootstrap_servers = "localhost:9092"
group_id = "ematix-flow"

[target]
kind = "postgres"
url = "postgres://localhost/mydb"

[target.table]
schema = "public"
name = "events"
"""
    )
    spec = load_config(path)
    assert spec.name == "events-to-pg"
    assert spec.idle_pause_ms == 500
    (source,) = spec.sources
    assert (source.query, source.connection.kind, source.connection.group_id) == (
        "events",
        "kafka",
        "ematix-flow",
    )
    assert spec.targets[0].table == ("public", "events")


def test_toml_and_keywords_build_the_same_spec() -> None:
    from_toml = spec_from_mapping(_toml(batch_size=500, delivery="exactly_once"))
    from_keywords = streaming_spec(
        name="events-to-pg",
        source=KafkaConnection(
            name="source", bootstrap_servers="localhost:9092", group_id="ematix"
        ),
        source_query="events",
        target=from_toml.targets[0].connection,
        target_table=("public", "events"),
        batch_size=500,
        delivery="exactly_once",
    )
    assert from_toml == from_keywords


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pipeline_nme": "x"}, "unknown key 'pipeline_nme'; did you mean 'pipeline_name'"),
        ({"delivery": "exactly-once"}, "delivery 'exactly-once'"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"transform": {"sql": "SELECT 1", "on_eror": "drop"}}, r"\[transform\] unknown key"),
        ({"target": {**PG, "table": {"schema": "public"}}}, r"\[target\] table: name is required"),
        (
            {"target": {**PG, "table": {"name": "e", "primary": ["id"]}}},
            "did you mean 'primary_key'",
        ),
        ({"source": {**KAFKA, "bootstrap_servers": "kafka://x:1"}}, "bootstrap_servers"),
        ({"source": {"kind": "kafak", "bootstrap_servers": "x:1"}}, "kafak"),
        ({"target": {**PG, "mode": "upsert", "table": {"name": "e"}}}, "mode 'upsert'"),
        (
            {"target": {**PG, "parquet_compression": "zstd", "table": {"name": "e"}}},
            "parquet_compression applies to file targets",
        ),
    ],
)
def test_toml_errors_name_the_key(change: dict, message: str) -> None:
    data = _toml()
    if "pipeline_nme" in change:
        del data["pipeline_name"]
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        spec_from_mapping(data, where="pipeline.toml")


def test_toml_fan_in_fan_out_and_file_read_options() -> None:
    data = {
        "pipeline_name": "fanin",
        "sources": [
            {**KAFKA, "name": "orders", "query": "orders"},
            {**KAFKA, "name": "payments", "query": "payments"},
        ],
        "targets": [
            {**PG, "table": [{"schema": "public", "name": "events_pg"}]},
            {
                "kind": "object_store_local",
                "path": "/data/lake",
                "format": "csv",
                "prefix": "events/csv",
                "csv_delimiter": ";",
                "read_options": {"csv": {"has_header": True, "delimiter": 44}},
            },
        ],
    }
    spec = spec_from_mapping(data)
    assert [s.label for s in spec.sources] == ["orders/orders", "payments/payments"]
    assert spec.targets[1].csv_read_options == {"has_header": True, "delimiter": ","}


def test_file_target_options_are_checked_against_the_format() -> None:
    csv = ObjectStoreLocalConnection(name="lake", path="/data", format="csv")
    parquet = ObjectStoreLocalConnection(name="lake", path="/data", format="parquet")
    with pytest.raises(ConfigError, match="parquet_compression does not apply to a 'csv'"):
        Target(connection=csv, prefix="p", parquet_compression="zstd")
    with pytest.raises(ConfigError, match="csv_read_options does not apply to a 'parquet'"):
        Target(connection=parquet, prefix="p", csv_read_options={"has_header": True})
    with pytest.raises(ConfigError, match="unknown key 'header'; did you mean 'has_header'"):
        Target(connection=csv, prefix="p", csv_read_options={"header": True})
    with pytest.raises(ConfigError, match="file targets only append"):
        Target(connection=csv, prefix="p", mode="merge")
    Target(connection=parquet, prefix="p", parquet_compression="zstd")


def test_keyword_errors() -> None:
    duck = DuckDBConnection(name="d", path=":memory:")
    memory = MemorySource("m", [{"a": 1}])
    with pytest.raises(ConfigError, match="exactly one of source= and sources="):
        streaming_spec(name="p", target=duck, target_table=("a", "b"))
    with pytest.raises(ConfigError, match="target_primary_key= apply to target="):
        streaming_spec(
            name="p", source=memory, targets=[Target(connection=duck, table=("a", "b"))],
            target_table=("a", "b"),
        )  # fmt: skip
    with pytest.raises(ConfigError, match="dead_letter_topic needs Kafka sources"):
        streaming_spec(
            name="p", source=memory, target=duck, target_table=("a", "b"), dead_letter_topic="x"
        )
    with pytest.raises(ConfigError, match="metadata_columns has '_offsets'"):
        Source(connection=memory, metadata_columns=("_offsets",))
    from ematix_engine.streaming.api import run_streaming_pipeline

    with pytest.raises(ConfigError, match="unknown keyword 'batchsize'; did you mean 'batch_size'"):
        run_streaming_pipeline(name="p", source=memory, target=duck, batchsize=3)


def test_restart_backoff_grows_and_caps() -> None:
    policy = RestartPolicy(min_backoff_ms=100, max_backoff_ms=1000)
    assert [policy.delay_ms(n, 0.999999) for n in (1, 2, 3, 4, 5)] == pytest.approx(
        [100, 200, 400, 800, 1000], rel=1e-3
    )
    assert policy.delay_ms(3, 0.0) == 200  # jitter: between half and the full delay
    with pytest.raises(ConfigError, match="min_backoff_ms"):
        RestartPolicy(min_backoff_ms=10, max_backoff_ms=5)


def test_memory_source_validates_its_data() -> None:
    with pytest.raises(ConfigError, match="event_time_column 'ts' is not a column"):
        MemorySource("m", [{"a": 1}], event_time_column="ts")
    with pytest.raises(ConfigError, match="list of dicts"):
        MemorySource("m", 42)  # type: ignore[arg-type]


def test_streaming_pipeline_decorator_registers_apart_from_batch() -> None:
    from ematix_engine import ematix, registry

    @ematix.streaming_pipeline(
        source=MemorySource("m", [{"a": 1}]),
        target=DuckDBConnection(name="d", path=":memory:"),
        target_table=("main", "t"),
    )
    def my_stream():
        """Docs."""

    assert registry.get_streaming_spec("my_stream") is my_stream.spec
    assert registry.specs() == []
    assert my_stream.spec.description == "Docs."
