"""transform_on_error: fail raises, drop returns an empty table and counts, dlq returns the rows."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from ematix_engine.errors import ConfigError, EmatixError
from ematix_engine.transform import ErrorPolicy, TransformError, TransformSqlError, TransformStage

SQL = "SELECT id, CAST(amount AS DOUBLE) AS amount FROM source"
GOOD = pa.table({"id": [1, 2], "amount": ["1.5", "2"]})
BAD = pa.table({"id": [3, 4, 5], "amount": ["3", "oops", "5"]})


@pytest.fixture
def stage():
    with TransformStage(SQL, pipeline="payments") as stage:
        yield stage


def test_fail_raises_a_transform_error_naming_the_pipeline_and_the_sql_error(stage) -> None:
    policy = ErrorPolicy("fail", pipeline="payments")
    assert policy.run(stage, GOOD).table.num_rows == 2
    with pytest.raises(TransformError) as caught:
        policy.run(stage, BAD)
    assert isinstance(caught.value, EmatixError)
    assert "'payments'" in str(caught.value) and "oops" in str(caught.value)


def test_drop_returns_an_empty_table_and_counts_it(stage, caplog) -> None:
    policy = ErrorPolicy("drop", pipeline="payments")
    policy.run(stage, GOOD)
    with caplog.at_level(logging.WARNING, logger="ematix.transform"):
        outcome = policy.run(stage, BAD)
    assert outcome.failed and isinstance(outcome.error, TransformError)
    assert outcome.table.num_rows == 0
    assert outcome.table.schema == pa.schema([("id", pa.int64()), ("amount", pa.float64())])
    assert outcome.dead_letters is None
    assert (policy.dropped_batches, policy.dropped_rows) == (1, 3)
    assert "'payments'" in caplog.text and "dropped a batch of 3 rows" in caplog.text
    assert policy.run(stage, GOOD).table.num_rows == 2  # the stream goes on


def test_dlq_returns_the_failed_input_rows(stage) -> None:
    policy = ErrorPolicy("dlq", pipeline="payments")
    outcome = policy.run(stage, BAD.to_batches()[0])
    assert outcome.failed and outcome.table.num_rows == 0
    assert outcome.dead_letters.equals(BAD)
    assert "oops" in str(outcome.error)
    assert (policy.dead_lettered_batches, policy.dead_lettered_rows) == (1, 3)
    good = policy.run(stage, GOOD)
    assert not good.failed and good.dead_letters is None


def test_a_failing_first_batch_drops_with_the_planned_schema(stage) -> None:
    outcome = ErrorPolicy("drop", pipeline="payments").run(stage, BAD)
    assert outcome.table.column_names == ["id", "amount"]


def test_an_invalid_query_is_raised_whatever_the_policy() -> None:
    with TransformStage("SELECT missing FROM source", pipeline="p") as stage:
        for mode in ("drop", "dlq"):
            with pytest.raises(TransformSqlError):
                ErrorPolicy(mode, pipeline="p").run(stage, GOOD)


def test_an_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"transform_on_error='skip'.*fail, drop, dlq"):
        ErrorPolicy("skip", pipeline="p")
