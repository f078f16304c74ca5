"""Metadata sets, retry mapping and the public surface of ematix_dagster."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import dagster as dg
import pytest

# Only the tests reach into dagster._core: to prove our keys are the ones Dagster reads.
from dagster._core.definitions.metadata.metadata_set import TableMetadataSet

import ematix_dagster
from ematix_dagster.metadata import EmatixMetadata, TableMetadata
from ematix_dagster.retry import dagster_retry_policy, needs_requested_retries, requested_retry
from ematix_engine.specs import RetryPolicy

PACKAGE = Path(ematix_dagster.__file__).parent


def test_table_metadata_is_what_dagster_reads() -> None:
    schema = dg.TableSchema(columns=[dg.TableColumn("id", "BIGINT")])
    lineage = dg.TableColumnLineage(
        deps_by_column={
            "id": [dg.TableColumnDep(asset_key=dg.AssetKey(["raw", "x"]), column_name="id")]
        }
    )
    ours = dict(
        TableMetadata(row_count=3, table_name="s.t", column_schema=schema, column_lineage=lineage)
    )
    parsed = TableMetadataSet.extract(ours)
    assert parsed.row_count == 3
    assert parsed.table_name == "s.t"
    assert parsed.column_schema == schema
    assert parsed.column_lineage == lineage
    assert set(ours) == {
        "dagster/row_count",
        "dagster/table_name",
        "dagster/column_schema",
        "dagster/column_lineage",
    }


def test_ematix_metadata_is_namespaced_and_skips_none() -> None:
    meta = EmatixMetadata(pipeline="p", rows_inserted=0, watermark=None)
    assert dict(meta) == {"ematix/pipeline": "p", "ematix/rows_inserted": 0}
    assert {**meta, "x": 1} == {"ematix/pipeline": "p", "ematix/rows_inserted": 0, "x": 1}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetryPolicy(), None),
        (
            RetryPolicy(max_attempts=3, backoff_seconds=10, jitter=0.2),
            dg.RetryPolicy(2, 10, dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS),
        ),
        (
            RetryPolicy(max_attempts=2, backoff_seconds=5, jitter=0),
            dg.RetryPolicy(1, 5, dg.Backoff.EXPONENTIAL, None),
        ),
        (
            RetryPolicy(max_attempts=4, backoff_seconds=1, backoff_factor=1, jitter=0),
            dg.RetryPolicy(3, 1),
        ),
        (RetryPolicy(max_attempts=4, backoff_seconds=30, backoff_factor=3), None),
    ],
    ids=["no-retry", "exponential-jitter", "exponential", "constant", "factor-3"],
)
def test_retry_policy_mapping(policy: RetryPolicy, expected: dg.RetryPolicy | None) -> None:
    assert dagster_retry_policy(policy) == expected


def test_other_factors_request_retries_with_the_engine_delay() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_seconds=10, backoff_factor=3, jitter=0)
    assert needs_requested_retries(policy)
    retry = requested_retry(policy, 2, RuntimeError("boom"))
    assert isinstance(retry, dg.RetryRequested)
    assert retry.seconds_to_wait == 30 and retry.max_retries == 2
    assert requested_retry(policy, 3, RuntimeError("boom")) is None
    assert requested_retry(RetryPolicy(max_attempts=3), 1, RuntimeError("boom")) is None


def test_public_surface() -> None:
    names = ematix_dagster.__all__
    assert names == sorted(names)
    for name in names:
        obj = getattr(ematix_dagster, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_no_private_dagster_imports() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            offenders += [
                f"{path.name}: {m}"
                for m in modules
                if m.startswith(("dagster._", "dagster_shared"))
            ]
    assert offenders == []
