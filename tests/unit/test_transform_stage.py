"""TransformStage: filter/project, plan reuse per input schema, SQL validation, JSON aggregation."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from ematix_engine.errors import ConfigError, EmatixError
from ematix_engine.transform import (
    Lookup,
    TransformError,
    TransformSqlError,
    TransformStage,
)

FILTER_PROJECT = """
    SELECT user_id, event_type, amount * 2 AS doubled
    FROM source
    WHERE event_type IN ('click', 'view') AND amount > 0
"""


def events(offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([1, 2, 3, 4], pa.int64()),
            "event_type": ["click", "view", "other", "click"],
            "amount": [1.5 + offset, 2.0, 3.0, -1.0],
        }
    )


@pytest.fixture
def stage():
    with TransformStage(FILTER_PROJECT, pipeline="events-clean") as stage:
        yield stage


def test_filter_and_project(stage: TransformStage) -> None:
    out = stage.run(events())
    assert out.to_pydict() == {
        "user_id": [1, 2],
        "event_type": ["click", "view"],
        "doubled": [3.0, 4.0],
    }


def test_a_record_batch_and_an_empty_batch_run_too(stage: TransformStage) -> None:
    batch = events().to_batches()[0]
    assert stage.run(batch).num_rows == 2
    empty = stage.run(events().slice(0, 0))
    assert empty.num_rows == 0
    assert empty.column_names == ["user_id", "event_type", "doubled"]


def test_the_plan_is_built_once_per_input_schema(stage: TransformStage) -> None:
    for offset in range(5):
        out = stage.run(events(offset))
        assert out.column("doubled").to_pylist() == [(1.5 + offset) * 2, 4.0]
    assert stage.plans_compiled == 1
    assert stage.batches == 5
    assert stage.plan_mode == "substrait"


def test_a_new_input_schema_gets_a_new_plan(stage: TransformStage) -> None:
    stage.run(events())
    wider = events().append_column("country", pa.array(["se", "de", "fr", "uk"]))
    assert stage.run(wider).num_rows == 2
    narrower_type = events().set_column(0, "user_id", pa.array([1, 2, 3, 4], pa.int32()))
    assert stage.run(narrower_type).schema.field("user_id").type == pa.int32()
    assert stage.plans_compiled == 3
    stage.run(events())  # the first schema's plan is still cached
    assert stage.plans_compiled == 3


def test_schema_metadata_does_not_cost_a_new_plan(stage: TransformStage) -> None:
    for value in ("1", "2", "3"):
        stage.run(events().replace_schema_metadata({"origin": value}))
    stage.run(events())
    assert stage.plans_compiled == 1


def test_now_is_evaluated_per_batch_not_frozen_in_the_plan() -> None:
    with TransformStage("SELECT now() AS at, a FROM source", pipeline="p") as stage:
        first = stage.run(pa.table({"a": [1]})).column("at")[0].value
        later = [stage.run(pa.table({"a": [1]})).column("at")[0].value for _ in range(50)]
    assert max(later) > first


def test_unknown_column_is_a_config_error_naming_the_pipeline(stage: TransformStage) -> None:
    with pytest.raises(TransformSqlError) as caught:
        stage.run(pa.table({"user_id": [1], "amount": [1.0]}))
    assert isinstance(caught.value, ConfigError)
    message = str(caught.value)
    assert "'events-clean'" in message and "event_type" in message
    assert "user_id, amount" in message  # the batch's columns, to fix the SQL


def test_sql_that_does_not_parse_fails_at_construction_when_the_schema_is_known() -> None:
    with pytest.raises(TransformSqlError, match=r"'bad-sql'.*transform_sql is invalid"):
        TransformStage("SELEC a FROM source", pipeline="bad-sql", schema=events().schema)


def test_sql_is_checked_lazily_at_the_first_batch_without_a_schema() -> None:
    stage = TransformStage("SELECT nope FROM source", pipeline="lazy")
    with pytest.raises(TransformSqlError, match=r"'lazy'.*nope"):
        stage.run(events())
    stage.close()


@pytest.mark.parametrize(
    "sql",
    ["DROP TABLE source", "CREATE TABLE x AS SELECT 1", "INSERT INTO source VALUES (1, 'a', 1.0)"],
)
def test_only_queries_are_accepted(sql: str) -> None:
    with pytest.raises(TransformSqlError):
        TransformStage(sql, pipeline="p", schema=events().schema)


def test_an_empty_query_and_a_lookup_named_source_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="empty"):
        TransformStage("  ", pipeline="p")
    with pytest.raises(ConfigError, match="reserved"):
        TransformStage(
            "SELECT * FROM source",
            lookups={"source": Lookup(connection="x", query="SELECT 1")},
            pipeline="p",
        )


def test_an_execution_failure_is_a_transform_error(stage: TransformStage) -> None:
    with TransformStage("SELECT CAST(a AS BIGINT) AS a FROM source", pipeline="casts") as casts:
        assert casts.run(pa.table({"a": ["1", "2"]})).column("a").to_pylist() == [1, 2]
        with pytest.raises(TransformError) as caught:
            casts.run(pa.table({"a": ["3", "x"]}))
    error = caught.value
    assert isinstance(error, EmatixError)
    assert error.pipeline == "casts" and error.rows == 2
    assert "'casts'" in str(error) and "Cannot cast string 'x'" in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_a_closed_stage_refuses_batches(stage: TransformStage) -> None:
    stage.close()
    stage.close()  # idempotent
    with pytest.raises(ConfigError, match="closed"):
        stage.run(events())


def test_array_agg_of_named_struct_gives_a_list_of_structs() -> None:
    """The guide's option-chain example: many rows per minute into one JSON-shaped row."""
    ts = pa.array([0, 10_000_000, 70_000_000, 80_000_000], pa.timestamp("us", "UTC"))
    chain = pa.table(
        {
            "ts": ts,
            "underlying": ["SPXW", "SPXW", "SPXW", "SPX"],
            "days_to_expiry": [0, 0, 0, 0],
            "strike": [4500, 4505, 4500, 4500],
            "bid": [1.25, 0.75, 1.5, 9.0],
            "ask": [1.30, 0.85, 1.6, 9.5],
        }
    )
    sql = """
        SELECT
          date_trunc('minute', ts) AS minute,
          array_agg(named_struct(
            'strike', strike,
            'bid',    bid,
            'ask',    ask
          )) AS strikes_json
        FROM source
        WHERE underlying = 'SPXW' AND days_to_expiry = 0
        GROUP BY 1
        ORDER BY 1
    """
    with TransformStage(sql, pipeline="option-chain-snapshots") as stage:
        out = stage.run(chain)
    field_type = out.schema.field("strikes_json").type
    assert pa.types.is_list(field_type) and pa.types.is_struct(field_type.value_type)
    assert [f.name for f in field_type.value_type] == ["strike", "bid", "ask"]
    assert out.column("strikes_json").to_pylist() == [
        [{"strike": 4500, "bid": 1.25, "ask": 1.30}, {"strike": 4505, "bid": 0.75, "ask": 0.85}],
        [{"strike": 4500, "bid": 1.5, "ask": 1.6}],
    ]
