"""Partitioned pipelines in Dagster, on DuckDB and PostgreSQL, through a real instance.

Two partitions materialized, one re-run, a single-run backfill over a range (the run a
``BackfillPolicy.single_run()`` backfill launches), the target asserted by query and the
partitions the instance shows as materialized.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import dagster as dg
import duckdb
import psycopg
import pytest

from ematix_dagster import EmatixResource, build_definitions
from ematix_engine import DuckDBConnection, PostgresConnection, ematix, pk
from ematix_engine.types import BigInt, Date, Text
from tests.fixtures.postgres import PgSchema

ROWS = [
    (1, "2024-01-01", "eu"),
    (2, "2024-01-01", "us"),
    (3, "2024-01-02", "eu"),
    (4, "2024-01-03", "us"),
    (5, "2024-01-04", "eu"),
]
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


class Store:
    """A target database with a ``raw_orders`` source table, queried by the test."""

    def __init__(self, connection, schema: str, run_sql) -> None:
        self.connection, self.schema, self.run_sql = connection, schema, run_sql

    def query(self, sql: str) -> list[tuple]:
        return self.run_sql(sql)


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    values = ", ".join(f"({i}, DATE '{d}', '{r}')" for i, d, r in ROWS)
    create = (
        "CREATE TABLE {s}.raw_orders AS SELECT * FROM (VALUES "
        + values
        + ") AS t(id, order_date, region)"
    )
    if request.param == "duckdb":
        path = tmp_path / "shop.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute(create.format(s="main"))

        def run_duck(sql: str) -> list[tuple]:
            with duckdb.connect(str(path)) as con:
                return con.sql(sql).fetchall()

        yield Store(
            DuckDBConnection(name=f"shop_{uuid.uuid4().hex[:8]}", path=str(path)), "main", run_duck
        )
        return
    schema: PgSchema = request.getfixturevalue("pg_schema")
    with psycopg.connect(schema.dsn, autocommit=True) as con:
        con.execute(create.format(s=schema.name))

    def run_pg(sql: str) -> list[tuple]:
        with psycopg.connect(schema.dsn, autocommit=True) as con:
            return con.execute(sql).fetchall()

    url = schema.dsn if "://" in schema.dsn else "postgresql://postgres@127.0.0.1:5432/test"
    yield Store(PostgresConnection(name=f"pg_{uuid.uuid4().hex[:8]}", url=url), schema.name, run_pg)


def _orders(store: Store, mode: str = "append"):
    @ematix.table(schema=store.schema, name="orders", connection=store.connection)
    class Orders:
        id: Annotated[BigInt, pk()]
        order_date: Date
        region: Text | None

    @ematix.pipeline(
        target=Orders,
        name=f"orders_{mode}",
        mode=mode,
        partitions=ematix.daily("order_date", start="2024-01-01", end="2024-01-05"),
        schedule="0 1 * * *",
    )
    def orders(conn):
        return f"SELECT id, order_date, region FROM {store.schema}.raw_orders"

    return orders


def _ids(store: Store) -> list[int]:
    return [r[0] for r in store.query(f"SELECT id FROM {store.schema}.orders ORDER BY id")]


@pytest.mark.parametrize("mode", ["append", "merge", "scd2"])
def test_partitions_materialize_rerun_and_backfill(
    store: Store, mode: str, dagster_instance: dg.DagsterInstance
) -> None:
    pipeline = _orders(store, mode)
    defs = build_definitions([pipeline])
    assets = list(defs.assets or [])
    key = dg.AssetKey([store.schema, "orders"])
    resources = {"ematix": EmatixResource()}

    for partition in ("2024-01-01", "2024-01-02", "2024-01-02"):
        result = dg.materialize(
            assets, partition_key=partition, resources=resources, instance=dagster_instance
        )
        assert result.success
    assert _ids(store) == [1, 2, 3]  # the re-run of 2024-01-02 added nothing twice
    assert dagster_instance.get_materialized_partitions(key) == {"2024-01-01", "2024-01-02"}

    # What a BackfillPolicy.single_run() backfill over 2024-01-02..2024-01-04 launches: one run
    # tagged with the range, which loads [2024-01-02, 2024-01-05) in one write.
    result = dg.materialize(
        assets,
        resources=resources,
        instance=dagster_instance,
        tags={RANGE_START_TAG: "2024-01-02", RANGE_END_TAG: "2024-01-04"},
    )
    assert result.success
    assert _ids(store) == [1, 2, 3, 4, 5]
    assert dagster_instance.get_materialized_partitions(key) == {
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
    }


def test_definitions_carry_partitions_backfill_policy_and_a_partitioned_schedule(
    store: Store,
) -> None:
    defs = build_definitions([_orders(store)])
    (assets,) = defs.assets or []
    assert isinstance(assets.partitions_def, dg.DailyPartitionsDefinition)
    assert assets.partitions_def.get_partition_keys()[:2] == ["2024-01-01", "2024-01-02"]
    assert assets.backfill_policy == dg.BackfillPolicy.single_run()
    (schedule,) = defs.schedules or []
    assert schedule.cron_schedule == "0 1 * * *"
    tick = dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 1, 3, 1, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    (request,) = schedule.evaluate_tick(tick).run_requests or []
    assert (request.partition_key, request.run_key) == ("2024-01-02", "2024-01-02")


def test_a_static_partition_loads_its_value(
    store: Store, dagster_instance: dg.DagsterInstance
) -> None:
    @ematix.table(schema=store.schema, name="orders", connection=store.connection)
    class Orders:
        id: Annotated[BigInt, pk()]
        order_date: Date
        region: Text | None

    @ematix.pipeline(target=Orders, partitions=ematix.static("region", ["eu", "us"]))
    def by_region(conn):
        return f"SELECT id, order_date, region FROM {store.schema}.raw_orders"

    defs = build_definitions([by_region])
    result = dg.materialize(
        list(defs.assets or []),
        partition_key="us",
        resources={"ematix": EmatixResource()},
        instance=dagster_instance,
    )
    assert result.success
    assert _ids(store) == [2, 4]
    assert defs.assets[0].backfill_policy == dg.BackfillPolicy.multi_run(1)
