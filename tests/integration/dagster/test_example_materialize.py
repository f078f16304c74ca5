"""Materialize the whole example (DuckDB warehouse, then PostgreSQL) and check the numbers."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psycopg
import pytest
from deltalake import DeltaTable

from ematix_dagster import DagsterRunLog
from ematix_engine.runlog.base import RunStatus

WAREHOUSE = [
    "analytics/customer_dim",
    "analytics/orders",
    "analytics/daily_revenue",
    "analytics/product_dim",
]
LAKE = ["archive/orders", "archive/order_changes"]
SHOP = ["shop/customers", "shop/orders", "shop/products"]


def _materialize_all(
    defs: dg.Definitions, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False
    )
    failures = [e.event_specific_data.error.message for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    return result


def _metadata(instance: dg.DagsterInstance, key: str) -> dict[str, Any]:
    records = instance.fetch_materializations(dg.AssetKey.from_user_string(key), limit=1).records
    assert records, f"no materialization of {key}"
    metadata = records[0].asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _duckdb_count(data: Path, key: str) -> int:
    schema, table = key.split("/")
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(f'SELECT COUNT(*) FROM "{schema}"."{table}"').fetchone()[0]


def _delta_count(data: Path, key: str) -> int:
    return DeltaTable(str(data / "lake" / key)).to_pyarrow_table().num_rows


def _shop_count(data: Path, key: str) -> int:
    with sqlite3.connect(data / "shop.db") as db:
        return db.execute(f"SELECT COUNT(*) FROM {key.split('/')[1]}").fetchone()[0]


def _check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_materialize_whole_example_on_duckdb(
    example_defs: dg.Definitions, example_data: Path, dagster_instance: dg.DagsterInstance
) -> None:
    first = _materialize_all(example_defs, dagster_instance)
    checks = _check_results(first)
    assert len(checks) == 21 and all(checks.values()), checks
    logged = [e.user_message for e in dagster_instance.all_logs(first.run_id) if e.user_message]
    assert "ematix: analytics.customer_dim: reading source" in logged  # progress in the run log
    assert "ematix: analytics.customer_dim: writing" in logged

    counts = {key: _duckdb_count(example_data, key) for key in WAREHOUSE}
    counts |= {key: _delta_count(example_data, key) for key in LAKE}
    counts |= {key: _shop_count(example_data, key) for key in SHOP}
    for key, real in counts.items():
        assert _metadata(dagster_instance, key)["dagster/row_count"] == real, key
    dim = _metadata(dagster_instance, "analytics/customer_dim")
    assert dim["ematix/mode"] == "scd2"
    assert dim["ematix/rows_inserted"] == counts["analytics/customer_dim"]
    assert dim["dagster/table_name"] == "analytics.customer_dim"
    assert "is_current" in [c.name for c in dim["dagster/column_schema"].columns]
    orders = _metadata(dagster_instance, "analytics/orders")
    assert orders["ematix/watermark"].startswith("2024-01-02")

    # A second run: the shop moves a day; SCD2 closes versions, the merge updates rows.
    _materialize_all(example_defs, dagster_instance)
    dim2 = _metadata(dagster_instance, "analytics/customer_dim")
    assert dim2["ematix/rows_closed"] == 3
    # SCD2: dagster/row_count counts current versions (as the row-count check does); every
    # version, closed ones included, is ematix/all_versions.
    assert dim2["ematix/all_versions"] == _duckdb_count(example_data, "analytics/customer_dim")
    assert dim2["ematix/all_versions"] == counts["analytics/customer_dim"] + 2 + 3
    assert dim2["dagster/row_count"] == dim2["ematix/current_versions"]
    assert dim2["dagster/row_count"] == counts["analytics/customer_dim"] + 2
    assert _metadata(dagster_instance, "analytics/orders")["ematix/rows_updated"] > 0
    changes = _metadata(dagster_instance, "archive/order_changes")
    assert changes["dagster/row_count"] == _delta_count(example_data, "archive/order_changes")

    # The same history through the RunLog protocol.
    log = DagsterRunLog(dagster_instance)
    runs = log.runs("customer_dim")
    assert [r.status for r in runs] == [RunStatus.SUCCESS, RunStatus.SUCCESS]
    assert runs[0].rows_closed == 3 and runs[0].run_id == dim2["ematix/run_id"]
    assert runs[0].metrics["dagster_run_id"] != runs[1].metrics["dagster_run_id"]
    archive = log.last_run("orders_archive")
    assert archive is not None and archive.metrics["targets"] == [
        "archive.orders",
        "archive.order_changes",
    ]
    assert log.attempt_state("customer_dim").next_attempt == 1
    run = dagster_instance.get_run_by_id(runs[0].metrics["dagster_run_id"])
    assert "customer_dim" in run.tags["ematix/pipeline"].split(",")


def test_materialize_whole_example_on_postgres(
    example_data: Path,
    pg_database: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMATIX_DSN_WAREHOUSE", pg_database)
    from example_project.definitions import build_example_definitions

    defs = build_example_definitions()
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey.from_user_string("analytics/orders")).kinds == {
        "postgres",
        "ematix",
    }
    for _ in range(2):
        result = _materialize_all(defs, dagster_instance)
        assert all(_check_results(result).values()), _check_results(result)
    with psycopg.connect(pg_database) as conn:
        for key in WAREHOUSE:
            schema, table = key.split("/")
            (real,) = conn.execute(f'SELECT COUNT(*) FROM "{schema}"."{table}"').fetchone()
            metadata = _metadata(dagster_instance, key)
            if "ematix/all_versions" in metadata:  # SCD2: row_count is the current versions
                (current,) = conn.execute(
                    f'SELECT COUNT(*) FROM "{schema}"."{table}" WHERE is_current'
                ).fetchone()
                assert metadata["dagster/row_count"] == current, key
                assert metadata["ematix/all_versions"] == real, key
            else:
                assert metadata["dagster/row_count"] == real, key
            assert _metadata(dagster_instance, key)["ematix/backend"] == "postgres"
    assert _metadata(dagster_instance, "analytics/customer_dim")["ematix/rows_closed"] == 3
    for key in LAKE:
        assert _metadata(dagster_instance, key)["dagster/row_count"] == _delta_count(
            example_data, key
        )
    assert not (example_data / "warehouse.duckdb").exists()
